#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A file descriptor with reads and writes that retry interrupted calls and report `Errno`.
///
/// A plain value, as swift-system's: whoever opened it owns it and calls `close()` once;
/// copies name the same descriptor.
public struct FileDescriptor: RawRepresentable, Hashable, Sendable {
  /// The kernel's descriptor number.
  public let rawValue: Int32

  /// The descriptor `rawValue` (already open; ownership passes to the caller).
  public init(rawValue: Int32) { self.rawValue = rawValue }

  /// Standard error (descriptor 2).
  public static let standardError = FileDescriptor(rawValue: 2)

  /// Opens `path` with `flags` (`O_CLOEXEC` is always added: children get no stray descriptors).
  public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(Errno) -> FileDescriptor {
    let fd = try retryingInterrupts { Glibc.open(path, flags | O_CLOEXEC, mode) }
    return FileDescriptor(rawValue: fd)
  }

  /// A pipe: bytes written to `write` are read from `read`.
  public static func pipe() throws(Errno) -> (read: FileDescriptor, write: FileDescriptor) {
    var ends: [Int32] = [-1, -1]
    guard Glibc.pipe(&ends) == 0 else { throw Errno.current }
    return (FileDescriptor(rawValue: ends[0]), FileDescriptor(rawValue: ends[1]))
  }

  /// Reads at most `buffer.count` bytes; the number read, 0 at the end of the file.
  public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
    try retryingInterrupts { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
  }

  /// Reads at most `buffer.count` bytes into the start of `buffer`; the number read, 0 at the
  /// end of the file.
  public func read(into buffer: inout [UInt8]) throws(Errno) -> Int {
    // withUnsafeMutableBytes rethrows untyped errors: carry the typed one out in a Result.
    try buffer.withUnsafeMutableBytes { raw in Result { () throws(Errno) in try read(into: raw) } }.get()
  }

  /// Writes some of `bytes` (a pipe or socket may take fewer); the number written.
  public func write(_ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int {
    try retryingInterrupts { Glibc.write(rawValue, bytes.baseAddress, bytes.count) }
  }

  /// Writes all of `bytes`, continuing after short writes. A write that takes nothing of a
  /// non-empty rest makes no progress and fails as `.ioError`; what went before stays written.
  public func writeAll(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
    var rest = bytes
    while !rest.isEmpty {
      let written = try write(rest)
      guard written > 0 else { throw .ioError }
      rest = UnsafeRawBufferPointer(rebasing: rest[written...])
    }
  }

  /// Writes all of `bytes` (see `writeAll(_:)`).
  public func writeAll(_ bytes: [UInt8]) throws(Errno) {
    try bytes.withUnsafeBytes { raw in Result { () throws(Errno) in try writeAll(raw) } }.get()
  }

  /// Writes all of `text` as UTF-8 (see `writeAll(_:)`).
  public func writeAll(_ text: String) throws(Errno) {
    var text = text
    try text.withUTF8 { utf8 in Result { () throws(Errno) in try writeAll(UnsafeRawBufferPointer(utf8)) } }
      .get()
  }

  /// Reads until the end of the file, `chunk` bytes at a time.
  public func readToEnd(chunk: Int = 4096) throws(Errno) -> [UInt8] {
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: chunk)
    while true {
      let n = try read(into: &buffer)
      if n == 0 { return out }
      out += buffer[0..<n]
    }
  }

  /// Closes the descriptor. Not retried after EINTR: Linux has released the descriptor by
  /// then, and a retry could close one another thread just opened.
  public func close() throws(Errno) {
    guard Glibc.close(rawValue) == 0 else {
      let error = Errno.current
      if error != .interrupted { throw error }
      return
    }
  }
}
