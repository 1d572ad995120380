/// Everything that can go wrong reaching a host, with what to do about it.
public struct SSHError: Error, CustomStringConvertible, Sendable {
  public struct Code: RawRepresentable, Hashable, Sendable {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let resolve = Code(rawValue: "resolve")
    public static let connect = Code(rawValue: "connect")
    public static let timeout = Code(rawValue: "timeout")
    public static let handshake = Code(rawValue: "handshake")
    public static let hostKeyUnknown = Code(rawValue: "host-key-unknown")
    public static let hostKeyMismatch = Code(rawValue: "host-key-mismatch")
    public static let hostKeyRevoked = Code(rawValue: "host-key-revoked")
    /// A known_hosts file that exists but cannot be read, or a line naming the host that
    /// cannot be parsed: refused rather than taken as "not known".
    public static let knownHostsUnreadable = Code(rawValue: "known-hosts-unreadable")
    public static let authentication = Code(rawValue: "authentication")
    public static let channel = Code(rawValue: "channel")
    public static let sftp = Code(rawValue: "sftp")
    public static let transfer = Code(rawValue: "transfer")
    public static let checksum = Code(rawValue: "checksum")
    public static let configuration = Code(rawValue: "configuration")
    public static let cancelled = Code(rawValue: "cancelled")
    public static let disconnected = Code(rawValue: "disconnected")
    /// A command sent more output than it may (`CommandLimits`); its channel was closed.
    public static let outputLimit = Code(rawValue: "output-limit")
  }

  public var code: Code
  /// The host as the user named it (`user@host:port`).
  public var host: String
  public var message: String

  public init(_ code: Code, host: String, _ message: String) {
    self.code = code
    self.host = host
    self.message = message
  }

  public var description: String { "\(host): \(message)" }
}
