//! The console's looks, decided from the facts, and the highlighted line.

use super::*;

#[test]
fn a_highlighted_line_is_in_the_status_colour_and_plain_without_colour() {
    let drawn = std::rc::Rc::new(RefCell::new(Vec::new()));
    struct Sink(std::rc::Rc<RefCell<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    for colour in [true, false] {
        drawn.borrow_mut().clear();
        let special = crate::terminal::keys::SpecialChars::default();
        let editor = Editor::new(100, 80, special);
        let tty = Tty::new(editor, Box::new(Sink(drawn.clone())), colour);
        let looks = ConsoleStyle::from_facts([true; 3], !colour, false);
        let mut console = Console::new(looks, Some(Rc::new(RefCell::new(tty))));
        console.highlight("the code is 7-brave-quiet-otters");
        let shown = String::from_utf8_lossy(&drawn.borrow()).into_owned();
        let want = match colour {
            true => {
                "\x1b[1;33msmolchat:\x1b[0m \x1b[1;33mthe code is 7-brave-quiet-otters\x1b[0m\n"
            }
            false => "smolchat: the code is 7-brave-quiet-otters\n",
        };
        assert!(shown.contains(want), "{shown:?}");
        assert!(!shown.contains("36m"), "never the peer label's colour: {shown:?}");
    }
}

#[test]
fn looks_follow_the_terminals_and_colour_rules() {
    let all = ConsoleStyle::from_facts([true; 3], false, false);
    let edit = cfg!(unix);
    assert_eq!(
        all,
        ConsoleStyle { prompt: true, label: true, colour: true, edit, status_colour: true }
    );
    // NO_COLOR takes the colour, not the editing; TERM=dumb both.
    let no_color = ConsoleStyle::from_facts([true; 3], true, false);
    assert!(!no_color.colour && !no_color.status_colour && no_color.edit == edit);
    let dumb = ConsoleStyle::from_facts([true; 3], false, true);
    assert!(!dumb.colour && !dumb.status_colour && !dumb.edit);
    // Editing needs the keyboard and stderr at a terminal.
    assert!(!ConsoleStyle::from_facts([true, true, false], false, false).edit);
    assert!(!ConsoleStyle::from_facts([false, true, true], false, false).edit);
    let piped = ConsoleStyle::from_facts([false; 3], false, false);
    assert_eq!(
        piped,
        ConsoleStyle {
            prompt: false,
            label: false,
            colour: false,
            edit: false,
            status_colour: false
        }
    );
}
