import Foundation
import Support

/// UTC times for logs and session names.
public enum UTCStamp {
  /// Nanoseconds since the epoch (the wall clock, as the agent's stamps).
  public static func nanoseconds() -> Int64 { SystemClock.realtimeNanoseconds() }

  /// `2026-11-26T19:10:51.123Z`
  public static func now() -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.string(from: Date())
  }

  /// `20261126T191051Z` (for folder names).
  public static func compact(_ date: Date = Date()) -> String {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "UTC")
    formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
    return formatter.string(from: date)
  }
}
