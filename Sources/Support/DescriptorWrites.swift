#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Writes all of `raw` to `fd`, retrying writes a signal interrupted; false when a write
/// fails (e.g. the reader of a pipe went away), with what was written before left in place.
public func writeAll(to fd: Int32, _ raw: UnsafeRawBufferPointer) -> Bool {
  guard let base = raw.baseAddress else { return true }
  var written = 0
  while written < raw.count {
    let n = write(fd, base + written, raw.count - written)
    if n < 0 && errno == EINTR { continue }
    // A zero-byte write for a non-empty buffer makes no progress: give up, as on an error.
    guard n > 0 else { return false }
    written += n
  }
  return true
}

/// Writes `text` to standard error unbuffered (diagnostics must not wait behind stdout's buffer).
public func writeStandardError(_ text: String) {
  var text = text
  text.withUTF8 { _ = writeAll(to: 2, UnsafeRawBufferPointer($0)) }
}
