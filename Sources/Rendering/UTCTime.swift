import SMCWire

/// Civil UTC time from epoch nanoseconds, without Foundation (fast enough per event).
public struct UTCTime: Sendable, Equatable {
  public var year: Int
  public var month: Int
  public var day: Int
  public var hour: Int
  public var minute: Int
  public var second: Int
  public var nanosecond: Int

  public init(epochNanoseconds: Int64) {
    var seconds = epochNanoseconds / 1_000_000_000
    var nanos = epochNanoseconds % 1_000_000_000
    if nanos < 0 {
      nanos += 1_000_000_000
      seconds -= 1
    }
    var days = seconds / 86_400
    var rest = seconds % 86_400
    if rest < 0 {
      rest += 86_400
      days -= 1
    }
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    year = Int(yoe + era * 400 + (m <= 2 ? 1 : 0))
    month = Int(m)
    day = Int(d)
    hour = Int(rest / 3600)
    minute = Int(rest % 3600 / 60)
    second = Int(rest % 60)
    nanosecond = Int(nanos)
  }

  /// `YYYY-MM-DD`.
  public var date: String {
    var out: [UInt8] = []
    pad(year, 4, &out)
    out.append(UInt8(ascii: "-"))
    pad(month, 2, &out)
    out.append(UInt8(ascii: "-"))
    pad(day, 2, &out)
    return String(decoding: out, as: UTF8.self)
  }

  /// Appends `HH:MM:SS.nnnnnnnnn`.
  public func writeTimeOfDay(into out: inout [UInt8]) {
    pad(hour, 2, &out)
    out.append(UInt8(ascii: ":"))
    pad(minute, 2, &out)
    out.append(UInt8(ascii: ":"))
    pad(second, 2, &out)
    out.append(UInt8(ascii: "."))
    pad(nanosecond, 9, &out)
  }

  /// ISO 8601 with nanoseconds, e.g. `2025-11-24T16:00:00.000175000Z`.
  public var iso8601: String {
    var out = Array(date.utf8)
    out.append(UInt8(ascii: "T"))
    writeTimeOfDay(into: &out)
    out.append(UInt8(ascii: "Z"))
    return String(decoding: out, as: UTF8.self)
  }

  private func pad(_ value: Int, _ width: Int, _ out: inout [UInt8]) {
    var digits = 1
    var v = value / 10
    while v > 0 {
      digits += 1
      v /= 10
    }
    for _ in digits..<max(digits, width) { out.append(UInt8(ascii: "0")) }
    TextWriter.decimal(UInt64(max(0, value)), into: &out)
  }
}
