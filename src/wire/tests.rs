//! `within`: work done in time is kept, late work is dropped; hex both ways.

use super::*;
use std::time::Duration;

#[test]
fn work_done_in_time_is_kept_and_late_work_is_dropped() {
    smol::block_on(async {
        let soon = Instant::now() + Duration::from_secs(20);
        assert_eq!(within(soon, async { 7 }).await, Some(7));
        let quick = async {
            smol::Timer::after(Duration::from_millis(10)).await;
            8
        };
        assert_eq!(within(soon, quick).await, Some(8));
        let past = Instant::now();
        assert_eq!(within(past, future::pending::<()>()).await, None);
        // Ready at once wins even past the deadline.
        assert_eq!(within(past, async { 9 }).await, Some(9));
    });
}

#[test]
fn hex_round_trips_and_refuses_junk() {
    assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
    assert_eq!(unhex("00abff"), Some(vec![0, 0xab, 0xff]));
    for bad in ["", "0", "0g", "AB", "0 "] {
        assert_eq!(unhex(bad), None, "{bad:?}");
    }
}
