#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The wall clock and the monotonic clock, without Foundation.
///
/// Realtime stamps what is recorded (packets, files, logs); monotonic measures how long
/// something took or how long is left, unaffected by the wall clock being set.
public enum SystemClock {
  /// Nanoseconds since the epoch (`CLOCK_REALTIME`).
  public static func realtimeNanoseconds() -> Int64 { nanoseconds(CLOCK_REALTIME) }

  /// Nanoseconds since an arbitrary fixed point (`CLOCK_MONOTONIC`); never goes back.
  public static func monotonicNanoseconds() -> Int64 { nanoseconds(CLOCK_MONOTONIC) }

  /// `monotonicNanoseconds` in seconds, for deadlines and intervals.
  public static func monotonicSeconds() -> Double { Double(monotonicNanoseconds()) / 1e9 }

  private static func nanoseconds(_ clock: clockid_t) -> Int64 {
    var now = timespec()
    // clock_gettime fails only for an unknown clock id; these two always exist.
    _ = clock_gettime(clock, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
  }
}
