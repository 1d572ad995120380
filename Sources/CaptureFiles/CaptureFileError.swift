/// Everything that can go wrong reading or writing a capture file.
///
/// Each error names the file, the byte offset where the problem is, and what to do.
/// `salvagedPackets` tells how many packets before the damage were delivered intact.
public struct CaptureFileError: Error, CustomStringConvertible, Sendable, Equatable {
  /// The kind of problem, stable for programs to branch on.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// The file could not be opened, mapped or written (see `systemError`).
    public static let io = Code("io")
    /// The file is not a pcap or pcapng capture.
    public static let notACapture = Code("not-a-capture")
    /// The file ends inside a header, block or packet record.
    public static let truncated = Code("truncated")
    /// A length, magic or field contradicts the format.
    public static let corrupt = Code("corrupt")
    /// A pcapng version or feature this reader does not support.
    public static let unsupported = Code("unsupported")
    /// The disk (or quota) is full while writing.
    public static let diskFull = Code("disk-full")
  }

  public var code: Code
  /// What is wrong, written for the person at the terminal.
  public var message: String
  public var path: String
  /// Byte offset of the damaged structure, when the problem is inside the file.
  public var offset: Int?
  /// Packets delivered intact before the problem.
  public var salvagedPackets: Int
  /// `errno` of a failed system call, if any.
  public var systemError: Int32?

  public init(
    _ code: Code, _ message: String, path: String, offset: Int? = nil, salvagedPackets: Int = 0,
    systemError: Int32? = nil
  ) {
    self.code = code
    self.message = message
    self.path = path
    self.offset = offset
    self.salvagedPackets = salvagedPackets
    self.systemError = systemError
  }

  public var description: String {
    var text = path
    if let offset { text += ": byte offset \(offset)" }
    text += ": \(message)"
    if code == .truncated || code == .corrupt {
      text +=
        " (\(salvagedPackets) packet\(salvagedPackets == 1 ? "" : "s") before the damage were read intact)"
    }
    return text
  }
}
