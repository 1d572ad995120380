#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Buffered output to a file descriptor, written in large chunks.
public final class OutputSink {
  public let fd: Int32
  public var buffer: [UInt8] = []
  private let limit: Int
  /// Set when a write failed (e.g. the reader of a pipe went away); output is then dropped.
  public private(set) var failed = false

  public init(fd: Int32, bufferSize: Int = 1 << 20) {
    self.fd = fd
    limit = bufferSize
    buffer.reserveCapacity(bufferSize + 4096)
  }

  deinit { flush() }

  @inline(__always)
  public func flushIfNeeded() {
    if buffer.count >= limit { flush() }
  }

  public func flush() {
    defer { buffer.removeAll(keepingCapacity: true) }
    guard !failed, !buffer.isEmpty else { return }
    buffer.withUnsafeBytes { raw in
      var written = 0
      while written < raw.count {
        let n = write(fd, raw.baseAddress! + written, raw.count - written)
        if n < 0 {
          if errno == EINTR { continue }
          failed = true
          return
        }
        written += n
      }
    }
  }

  @inline(__always)
  public func append(_ text: StaticString) {
    text.withUTF8Buffer { buffer.append(contentsOf: $0) }
  }

  public func append(_ text: String) {
    buffer.append(contentsOf: text.utf8)
  }

  /// Appends `text` as a JSON string literal, quotes included.
  public func appendJSONString(_ text: String) {
    buffer.append(UInt8(ascii: "\""))
    for byte in text.utf8 {
      switch byte {
      case UInt8(ascii: "\""): append("\\\"")
      case UInt8(ascii: "\\"): append("\\\\")
      case 0x0A: append("\\n")
      case 0x0D: append("\\r")
      case 0x09: append("\\t")
      case 0..<0x20:
        append("\\u00")
        buffer.append(hexDigit(byte >> 4))
        buffer.append(hexDigit(byte & 0xF))
      default: buffer.append(byte)
      }
    }
    buffer.append(UInt8(ascii: "\""))
  }

  private func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? v + 48 : v + 87 }
}

/// Writes `text` to standard error unbuffered.
public func writeStandardError(_ text: String) {
  var bytes = Array(text.utf8)
  bytes.withUnsafeMutableBytes { raw in
    var written = 0
    while written < raw.count {
      let n = write(2, raw.baseAddress! + written, raw.count - written)
      if n <= 0 {
        if n < 0 && errno == EINTR { continue }
        return
      }
      written += n
    }
  }
}
