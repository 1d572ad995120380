#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An error number a failed system call left in `errno`, with a Swift name and the C library's text.
///
/// The few numbers smcpair's code branches on have names (`.interrupted`, `.fileExists`); any
/// other number is still a value (`Errno(rawValue:)`) and prints as the C library's words.
public struct Errno: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
  /// The C value (`EINTR`, `ENOENT`, ...).
  public let rawValue: Int32

  /// The error number `rawValue`.
  public init(rawValue: Int32) { self.rawValue = rawValue }

  /// The calling thread's `errno` as it is now (read it right after the failed call).
  public static var current: Errno { Errno(rawValue: errno) }

  /// The C library's words for the number: "No such file or directory".
  public var description: String { String(cString: strerror(rawValue)) }

  /// `EINTR`: a signal arrived before the call did anything; the call is retried.
  public static let interrupted = Errno(rawValue: EINTR)
  /// `EAGAIN`: a non-blocking descriptor has nothing to give now.
  public static let wouldBlock = Errno(rawValue: EAGAIN)
  /// `ENOENT`.
  public static let noSuchFileOrDirectory = Errno(rawValue: ENOENT)
  /// `EEXIST`.
  public static let fileExists = Errno(rawValue: EEXIST)
  /// `EPERM`.
  public static let notPermitted = Errno(rawValue: EPERM)
  /// `EACCES`.
  public static let permissionDenied = Errno(rawValue: EACCES)
  /// `EISDIR`.
  public static let isDirectory = Errno(rawValue: EISDIR)
  /// `EINVAL`.
  public static let invalidArgument = Errno(rawValue: EINVAL)
  /// `EIO`.
  public static let ioError = Errno(rawValue: EIO)
  /// `ENOSPC`: the file system is full.
  public static let noSpace = Errno(rawValue: ENOSPC)
  /// `EPIPE`: the reading end of a pipe or socket went away.
  public static let brokenPipe = Errno(rawValue: EPIPE)
  /// `EBADF`.
  public static let badFileDescriptor = Errno(rawValue: EBADF)
  /// `ENOBUFS`: the kernel had no buffer space for the send.
  public static let noBufferSpace = Errno(rawValue: ENOBUFS)
  /// `ECONNREFUSED`.
  public static let connectionRefused = Errno(rawValue: ECONNREFUSED)
}
