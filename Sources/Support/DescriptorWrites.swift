#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Writes all of `raw` to `fd`, retrying writes a signal interrupted; false when a write
/// fails (e.g. the reader of a pipe went away), with what was written before left in place.
public func writeAll(to fd: Int32, _ raw: UnsafeRawBufferPointer) -> Bool {
  do {
    try FileDescriptor(rawValue: fd).writeAll(raw)
    return true
  } catch {
    return false
  }
}

/// Writes `text` to standard error unbuffered (diagnostics must not wait behind stdout's buffer).
public func writeStandardError(_ text: String) {
  _ = try? FileDescriptor.standardError.writeAll(text)
}
