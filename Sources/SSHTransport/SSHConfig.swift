import Foundation

/// The part of `~/.ssh/config` smcpair honours (docs/ssh.md).
public struct SSHConfig: Sendable {
  /// Settings resolved for one host, first value wins (as in OpenSSH), IdentityFile adds up.
  public struct Resolved: Sendable, Equatable {
    public var hostName: String?
    public var user: String?
    public var port: Int?
    public var identityFiles: [String] = []
    public var proxyJump: [String]?
    public var connectTimeout: Double?
    public var serverAliveInterval: Int?
    public var userKnownHostsFile: String?
    public var strictHostKeyChecking: String?
  }

  struct Block {
    var patterns: [String]
    var options: [(String, String, Int)]
  }

  let blocks: [Block]
  public let path: String

  public static var defaultPath: String {
    (ProcessInfo.processInfo.environment["HOME"] ?? "/root") + "/.ssh/config"
  }

  /// An empty configuration when the file does not exist.
  public init(path: String = SSHConfig.defaultPath) {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    self.init(text: text, path: path)
  }

  public init(text: String, path: String) {
    var blocks = [Block(patterns: ["*"], options: [])]
    for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = raw.trimmingCharacters(in: .whitespaces)
      guard !line.isEmpty, !line.hasPrefix("#") else { continue }
      var key = ""
      var value = ""
      if let equals = line.firstIndex(of: "="), !line[..<equals].contains(" ") {
        key = String(line[..<equals]).trimmingCharacters(in: .whitespaces)
        value = String(line[line.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
      } else {
        let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        key = String(parts[0])
        value = parts.count > 1 ? String(parts[1]).trimmingCharacters(in: .whitespaces) : ""
      }
      if value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 {
        value = String(value.dropFirst().dropLast())
      }
      if key.lowercased() == "host" {
        blocks.append(Block(patterns: value.split(separator: " ").map(String.init), options: []))
      } else if key.lowercased() == "match" {
        // Match blocks are not supported: their options apply to no host.
        blocks.append(Block(patterns: [], options: []))
      } else {
        blocks[blocks.count - 1].options.append((key.lowercased(), value, index + 1))
      }
    }
    self.blocks = blocks
    self.path = path
  }

  /// The settings for `host` (the name the user typed).
  public func resolve(_ host: String) throws(SSHError) -> Resolved {
    var out = Resolved()
    for block in blocks where SSHConfig.matches(block.patterns, host) {
      for (key, value, line) in block.options {
        switch key {
        case "hostname":
          if out.hostName == nil { out.hostName = value.replacingOccurrences(of: "%h", with: host) }
        case "user": if out.user == nil { out.user = value }
        case "port": if out.port == nil { out.port = Int(value) }
        case "identityfile": out.identityFiles.append(value)
        case "proxyjump":
          if out.proxyJump == nil {
            out.proxyJump = value.lowercased() == "none" ? [] : value.split(separator: ",").map(String.init)
          }
        case "connecttimeout": if out.connectTimeout == nil { out.connectTimeout = Double(value) }
        case "serveraliveinterval": if out.serverAliveInterval == nil { out.serverAliveInterval = Int(value) }
        case "userknownhostsfile":
          if out.userKnownHostsFile == nil {
            out.userKnownHostsFile = value.split(separator: " ").first.map(String.init)
          }
        case "stricthostkeychecking":
          if out.strictHostKeyChecking == nil {
            let setting = value.lowercased()
            if setting == "no" || setting == "off" {
              throw SSHError(
                .configuration, host: host,
                "\(path):\(line): StrictHostKeyChecking \(value) is refused: smcpair never accepts a changed or unknown host key silently; use 'accept-new' to record keys of new hosts"
              )
            }
            out.strictHostKeyChecking = setting
          }
        default: break
        }
      }
    }
    return out
  }

  static func matches(_ patterns: [String], _ host: String) -> Bool {
    var matched = false
    for pattern in patterns {
      if pattern.hasPrefix("!") {
        if KnownHosts.glob(String(pattern.dropFirst()), host) { return false }
      } else if KnownHosts.glob(pattern, host) {
        matched = true
      }
    }
    return matched
  }
}
