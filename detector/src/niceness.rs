//! The reading threads run at a lower priority than the engine thread.
//!
//! The engine thread is the one part of a run that cannot be split: every
//! batch goes through it in order. Readers and the workers parsing pieces
//! of a big file are several, and on a machine with fewer cores than
//! threads the kernel otherwise shares each core evenly between them and
//! the engine, so the engine falls behind, its queue fills, the readers
//! stop, and a core idles until it catches up. With the readers a few
//! nice levels down (Linux keeps a nice value per thread, and threads a
//! reader starts inherit it), the engine takes the core it needs whenever
//! it has a batch and the readers use the rest. On one core, or with cores
//! to spare, it changes nothing.

/// Nice levels the reading threads run below the thread that starts them.
/// The kernel weighs each level about 1.25 times the next: at 5, the engine
/// gets about three quarters of a core it shares with one reader.
pub const READER_NICENESS: i32 = 5;

/// Lowers the calling thread's priority by `levels` nice levels. Best
/// effort: where it cannot be done (another system, a thread already at
/// the lowest priority), the thread runs as it was.
pub(crate) fn lower_this_thread(levels: i32) {
    #[cfg(target_os = "linux")]
    {
        let Some(nice) = this_thread_nice() else {
            return;
        };
        let lowered = (nice + levels).min(19);
        // SAFETY: setpriority takes three integers and touches no memory of
        // this process; on Linux, PRIO_PROCESS with 0 names the calling
        // thread alone (the nice value is per thread).
        let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, lowered) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = levels;
}

/// The calling thread's nice value, from `/proc/thread-self/stat` (the
/// 19th field; the command name before it, in parentheses, may hold
/// spaces, so fields are counted from its closing parenthesis).
#[cfg(target_os = "linux")]
fn this_thread_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(16)?.parse().ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_thread_runs_nicer_and_its_parent_does_not() {
        let before = this_thread_nice().unwrap_or_else(|| panic!("no nice value read"));
        let (inside, child) = std::thread::spawn(|| {
            lower_this_thread(3);
            let inside = this_thread_nice();
            // A thread started by a lowered one inherits its value.
            let child = std::thread::spawn(this_thread_nice).join().ok().flatten();
            (inside, child)
        })
        .join()
        .unwrap_or_else(|_| panic!("the thread panicked"));
        let lowered = Some((before + 3).min(19));
        assert_eq!(inside, lowered);
        assert_eq!(child, lowered);
        assert_eq!(this_thread_nice(), Some(before), "the caller is unchanged");
    }
}
