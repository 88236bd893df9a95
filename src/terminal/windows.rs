//! Windows only: asks a console to take the colour sequences that a Unix
//! terminal takes as they are (virtual-terminal processing, Windows 10 and
//! later). The one place in smolchat with unsafe code, because std has no
//! call for a console's mode.

#![allow(unsafe_code)]

use std::io;
use std::os::windows::io::AsRawHandle;

use windows_sys::Win32::System::Console::{
    GetConsoleMode, SetConsoleMode, CONSOLE_MODE, ENABLE_VIRTUAL_TERMINAL_PROCESSING,
};

/// Turns on virtual-terminal processing where `stream` is a console, and
/// says whether it now takes escape sequences: false for a pipe, a file, a
/// console older than Windows 10, or a terminal that only looks like one
/// (mintty), which are then given no colour. The mode is left on at the
/// end, as other console programs leave it: it only lets sequences through.
pub fn enable_vt(stream: &impl AsRawHandle) -> bool {
    let handle = stream.as_raw_handle();
    let mut mode: CONSOLE_MODE = 0;
    // SAFETY: `handle` is std's handle for a standard stream, alive for the
    // whole program (or null, which both calls refuse with an error); the
    // first call writes one u32 into `mode`, a live local, and the second
    // takes the handle and a value. Neither keeps a pointer.
    unsafe {
        if GetConsoleMode(handle, &mut mode) == 0 {
            return false;
        }
        mode & ENABLE_VIRTUAL_TERMINAL_PROCESSING != 0
            || SetConsoleMode(handle, mode | ENABLE_VIRTUAL_TERMINAL_PROCESSING) != 0
    }
}

/// [`enable_vt`] for stdout and for stderr.
pub fn enable_vt_out_err() -> [bool; 2] {
    [enable_vt(&io::stdout()), enable_vt(&io::stderr())]
}
