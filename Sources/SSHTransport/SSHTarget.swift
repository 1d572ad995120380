import Foundation

/// A host to reach: `[user@]host[:port]`, from `ssh://` text, an ssh_config alias or an
/// inventory entry.
public struct SSHTarget: Sendable, Equatable, CustomStringConvertible {
  public var user: String?
  public var host: String
  public var port: Int?
  /// Remote path for `ssh://user@host:port/path` (copy).
  public var path: String?

  public init(user: String? = nil, host: String, port: Int? = nil, path: String? = nil) {
    self.user = user
    self.host = host
    self.port = port
    self.path = path
  }

  /// Parses `ssh://[user@]host[:port][/path]`; `[v6]` hosts in brackets. Nil when not ssh://.
  public static func parse(url text: String) -> SSHTarget? {
    guard text.hasPrefix("ssh://") else { return nil }
    var rest = Substring(text.dropFirst(6))
    var path: String?
    if let slash = rest.firstIndex(of: "/") {
      path = String(rest[slash...])
      rest = rest[..<slash]
    }
    var user: String?
    if let at = rest.lastIndex(of: "@") {
      user = String(rest[..<at])
      rest = rest[rest.index(after: at)...]
    }
    var host = String(rest)
    var port: Int?
    if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
      host = String(rest[rest.index(after: rest.startIndex)..<close])
      let after = rest[rest.index(after: close)...]
      if after.hasPrefix(":") {
        port = SSHTarget.port(String(after.dropFirst()))
        if port == nil { return nil }
      } else if !after.isEmpty {
        return nil
      }
    } else if let colon = rest.lastIndex(of: ":") {
      host = String(rest[..<colon])
      port = SSHTarget.port(String(rest[rest.index(after: colon)...]))
      if port == nil || host.contains(":") { return nil }
    }
    guard !host.isEmpty, user?.isEmpty != true else { return nil }
    return SSHTarget(user: user, host: host, port: port, path: path)
  }

  /// `[user@]host[:port]`, also accepted by `parse(jump:)`.
  public static func parse(jump text: String) -> SSHTarget? {
    if let url = parse(url: text) { return url }
    return parse(url: "ssh://" + text)
  }

  /// A TCP port as OpenSSH's `a2port` takes it: decimal digits, 1 to 65535.
  public static func port(_ text: String) -> Int? {
    guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
      let value = Int(text), (1...65535).contains(value)
    else { return nil }
    return value
  }

  /// `user@host:port` for messages, with IPv6 addresses in brackets.
  public static func label(user: String?, host: String, port: Int) -> String {
    (user.map { "\($0)@" } ?? "") + (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
  }

  public var description: String {
    var text = user.map { "\($0)@" } ?? ""
    text += host.contains(":") ? "[\(host)]" : host
    if let port { text += ":\(port)" }
    return text
  }
}

/// Builds remote command lines. The remote sshd hands commands to a shell, so every
/// argument is single-quoted here: the one place a command line is put together.
public enum RemoteCommand {
  public static func quote(_ argument: String) -> String {
    "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
  }

  public static func join(_ arguments: [String]) -> String {
    arguments.map(quote).joined(separator: " ")
  }
}
