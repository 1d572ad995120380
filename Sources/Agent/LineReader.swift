import Support

#if canImport(Glibc)
  import Glibc
#endif

/// Sends one line (newline added) to a peer: stdout, the session socket or the owning agent.
/// A failed write is not reported here: a peer that went away shows as the end of its input.
func sendLine(_ line: String, to fd: Int32) {
  _ = try? FileDescriptor(rawValue: fd).writeAll(line + "\n")
}

/// Splits a byte stream into lines; lines longer than 1 MiB are dropped and reported.
struct LineReader {
  let fd: Int32
  var pending: [UInt8] = []
  var overlong = false
  var closed = false
  static let limit = 1 << 20

  init(fd: Int32) { self.fd = fd }

  /// Reads what is available; returns complete lines (an overlong one as nil).
  mutating func read() -> [String?] {
    var buffer = [UInt8](repeating: 0, count: 65536)
    let n: Int
    do {
      n = try FileDescriptor(rawValue: fd).read(into: &buffer)
    } catch {
      // Nothing yet on a non-blocking descriptor; any other error ends the stream.
      if error != .wouldBlock { closed = true }
      return []
    }
    if n == 0 {
      closed = true
      return []
    }
    var lines: [String?] = []
    for byte in buffer[0..<n] {
      if byte == 0x0A {
        lines.append(overlong ? nil : String(decoding: pending, as: UTF8.self))
        pending.removeAll(keepingCapacity: true)
        overlong = false
      } else if !overlong {
        pending.append(byte)
        if pending.count > LineReader.limit {
          overlong = true
          pending.removeAll()
        }
      }
    }
    return lines
  }
}
