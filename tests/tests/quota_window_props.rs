//! Property tests for the quota window math (`gateway_core::quota::window`
//! and `sliding_allowance`): windows are aligned, contain `now`, move
//! forward with time, and the sliding allowance stays within `0..=max`,
//! grows as the previous window fades and shrinks as it weighs more —
//! including at the extremes (a 366-day window, `now` near `u64::MAX`).

use gateway_core::quota::{sliding_allowance, window, Window};
use proptest::prelude::*;

/// The longest window config validation allows (366 days), in ms.
const MAX_WINDOW_MS: u64 = 366 * 24 * 3600 * 1000;

/// Times biased towards the edges: the epoch, today, and the top of `u64`.
fn now_ms() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..10_000_000,
        1_700_000_000_000u64..1_900_000_000_000,
        (0u64..10_000_000).prop_map(|d| u64::MAX - d),
    ]
}

fn window_ms() -> impl Strategy<Value = u64> {
    prop_oneof![
        1u64..=MAX_WINDOW_MS,
        Just(1),
        Just(MAX_WINDOW_MS),
        any::<u64>()
    ]
}

fn check_window(now: u64, window_ms: u64, w: Window) -> Result<(), TestCaseError> {
    let length = window_ms.max(1);
    prop_assert_eq!(w.start_ms % length, 0, "start not aligned");
    prop_assert_eq!(w.index, now / length);
    prop_assert!(w.start_ms <= now, "{:?} starts after {}", w, now);
    // `now` is inside; the reset saturates at u64::MAX rather than wrap.
    prop_assert!(
        now < w.reset_ms || w.reset_ms == u64::MAX,
        "{:?} ends by {}",
        w,
        now
    );
    prop_assert!(w.reset_ms > w.start_ms || w.reset_ms == u64::MAX);
    prop_assert!(w.reset_ms - w.start_ms <= length);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn a_window_contains_now(now in now_ms(), window_ms in window_ms()) {
        check_window(now, window_ms, window(now, window_ms))?;
    }

    #[test]
    fn windows_move_forward_with_time(a in now_ms(), b in now_ms(), window_ms in window_ms()) {
        let (early, late) = (a.min(b), a.max(b));
        let (w1, w2) = (window(early, window_ms), window(late, window_ms));
        prop_assert!(w1.index <= w2.index);
        prop_assert!(w1.start_ms <= w2.start_ms);
        prop_assert!(w1.reset_ms <= w2.reset_ms);
        // Same index, same window; the next index starts where this one resets.
        if w1.index == w2.index {
            prop_assert_eq!(w1, w2);
        } else if w2.index == w1.index + 1 && w1.reset_ms != u64::MAX {
            prop_assert_eq!(w1.reset_ms, w2.start_ms);
        }
    }

    #[test]
    fn the_sliding_allowance_stays_within_the_limit(
        max in any::<u64>(),
        previous in any::<u64>(),
        now in now_ms(),
        window_ms in window_ms(),
    ) {
        let w = window(now, window_ms);
        let allowance = sliding_allowance(max, previous, now, w);
        prop_assert!(allowance <= max);
        // Nothing carried over: the whole limit.
        prop_assert_eq!(sliding_allowance(max, 0, now, w), max);
        // At the window's start, the whole previous count still weighs.
        prop_assert_eq!(sliding_allowance(max, previous, w.start_ms, w), max.saturating_sub(previous));
    }

    #[test]
    fn the_previous_window_fades_as_time_passes(
        max in any::<u64>(),
        previous in any::<u64>(),
        now in now_ms(),
        later_by in any::<u64>(),
        window_ms in window_ms(),
    ) {
        let w = window(now, window_ms);
        // A later instant in the same window.
        let later = now.saturating_add(later_by % (w.reset_ms - now).max(1)).min(w.reset_ms.saturating_sub(1)).max(now);
        prop_assert!(
            sliding_allowance(max, previous, now, w) <= sliding_allowance(max, previous, later, w)
        );
    }

    #[test]
    fn more_previous_use_never_allows_more(
        max in any::<u64>(),
        a in any::<u64>(),
        b in any::<u64>(),
        now in now_ms(),
        window_ms in window_ms(),
    ) {
        let w = window(now, window_ms);
        let (less, more) = (a.min(b), a.max(b));
        prop_assert!(
            sliding_allowance(max, more, now, w) <= sliding_allowance(max, less, now, w)
        );
    }

    /// The carried part is the previous count weighted by the share of the
    /// window still to run, rounded up (never under-counts).
    #[test]
    fn the_carried_part_is_the_remaining_share(
        previous in 0u64..1_000_000_000,
        offset in any::<u64>(),
        window_ms in 1u64..=MAX_WINDOW_MS,
        index in 0u64..1_000_000,
    ) {
        let start = index * window_ms;
        let now = start + offset % window_ms;
        let w = window(now, window_ms);
        let remaining = u128::from(w.reset_ms - now);
        let carried = (u128::from(previous) * remaining).div_ceil(u128::from(window_ms));
        let expected = u64::MAX - u64::try_from(carried).unwrap();
        prop_assert_eq!(sliding_allowance(u64::MAX, previous, now, w), expected);
    }
}

/// Extremes, as plain cases.
#[test]
fn windows_at_the_top_of_u64_saturate() {
    for window_ms in [1, 1000, 60_000, MAX_WINDOW_MS, u64::MAX / 2 + 1, u64::MAX] {
        for now in [u64::MAX, u64::MAX - 1, u64::MAX - window_ms / 2] {
            let w = window(now, window_ms);
            check_window(now, window_ms, w).unwrap();
            let _ = sliding_allowance(10, u64::MAX, now, w);
        }
    }
    // A zero-length window is treated as 1 ms (config refuses 0).
    assert_eq!(window(5, 0), window(5, 1));
}
