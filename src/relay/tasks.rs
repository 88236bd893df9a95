//! The relay's tasks: a queue of those woken, run in turn by one future on
//! the main thread. async-task's tasks with a queue of our own cost 10.6 KB
//! of binary less than smol's `LocalExecutor`, with private chats or
//! without (measured, docs/relay.md).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Poll, Waker};

use async_task::Runnable;
use futures_lite::future;

/// The most tasks run before the reactor gets a turn.
const BATCH: usize = 200;

/// The tasks woken and not yet run, and the waker of [`run`] when it found
/// none. A wake may come from the reactor's own thread, hence the lock.
static WOKEN: Mutex<(VecDeque<Runnable>, Option<Waker>)> = Mutex::new((VecDeque::new(), None));

/// Runs `task` until it ends. Every task is boxed, so that the binary holds
/// one kind of task, not one for each of the relay's futures.
pub fn spawn(task: impl Future<Output = ()> + 'static) {
    let task: Pin<Box<dyn Future<Output = ()>>> = Box::pin(task);
    let (runnable, task) = async_task::spawn_local(task, schedule);
    task.detach();
    runnable.schedule();
}

/// Runs the tasks as they are woken, for ever.
pub async fn run() {
    future::poll_fn(|cx| {
        for _ in 0..BATCH {
            let Some(runnable) = woken().0.pop_front() else { break };
            runnable.run();
        }
        let mut woken = woken();
        match woken.0.is_empty() {
            true => woken.1 = Some(cx.waker().clone()),
            // More to run: after the reactor's turn.
            false => cx.waker().wake_by_ref(),
        }
        Poll::Pending
    })
    .await
}

/// Queues a woken task, and wakes [`run`] if it waits for one.
fn schedule(runnable: Runnable) {
    let mut woken = woken();
    woken.0.push_back(runnable);
    if let Some(waker) = woken.1.take() {
        waker.wake();
    }
}

/// The queue; a lock poisoned by a panic (which aborts) cannot be seen.
fn woken() -> MutexGuard<'static, (VecDeque<Runnable>, Option<Waker>)> {
    WOKEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
