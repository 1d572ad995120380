import Foundation

/// The part of `~/.ssh/config` smcpair honours (docs/ssh.md).
public struct SSHConfig: Sendable {
  /// Settings resolved for one host, first value wins (as in OpenSSH), IdentityFile adds up.
  public struct Resolved: Sendable, Equatable {
    public var hostName: String?
    public var user: String?
    public var port: Int?
    public var identityFiles: [String] = []
    /// The hops, parsed (`[]` for `ProxyJump none`).
    public var proxyJump: [SSHTarget]?
    public var connectTimeout: Double?
    public var serverAliveInterval: Int?
    /// `UserKnownHostsFile` (several, `none` = no file).
    public var userKnownHostsFiles: [String]?
    /// `GlobalKnownHostsFile` (several, `none` = no file).
    public var globalKnownHostsFiles: [String]?
    public var strictHostKeyChecking: String?
  }

  struct Block {
    var patterns: [String]
    var options: [(String, String, Int)]
  }

  let blocks: [Block]
  /// Lines OpenSSH refuses (a bad port, an invalid ProxyJump), in any block: `resolve`
  /// throws the first, as `ssh` refuses to start.
  let problems: [SSHError]
  public let path: String

  public static var defaultPath: String {
    (ProcessInfo.processInfo.environment["HOME"] ?? "/root") + "/.ssh/config"
  }

  /// An empty configuration when the file does not exist.
  public init(path: String = SSHConfig.defaultPath) {
    let bytes = FileManager.default.contents(atPath: path).map(Array.init) ?? []
    self.init(text: String(decoding: bytes, as: UTF8.self), path: path)
  }

  /// Parses like OpenSSH's readconf: the keyword ends at whitespace or `=`; one `=` with
  /// optional whitespace around it may separate it from the value; spaces, tabs, `\r` and
  /// form feeds are whitespace; `"double quotes"` group words.
  public init(text: String, path: String) {
    var blocks = [Block(patterns: ["*"], options: [])]
    var problems: [SSHError] = []
    for (index, raw) in text.split(
      omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }
    )
    .enumerated() {
      guard let (key, value) = SSHConfig.keyword(raw) else { continue }
      let line = index + 1
      switch key {
      case "host":
        blocks.append(Block(patterns: SSHConfig.words(value), options: []))
        continue
      case "match":
        // Match blocks are not supported: their options apply to no host.
        blocks.append(Block(patterns: [], options: []))
        continue
      case "port":
        let word = SSHConfig.words(value).first ?? ""
        if SSHTarget.port(word) == nil {
          problems.append(SSHError(.configuration, host: "", "\(path):\(line): Bad port '\(word)'"))
        }
      case "proxyjump":
        let word = SSHConfig.words(value).first ?? ""
        if SSHConfig.jumps(word) == nil {
          problems.append(
            SSHError(
              .configuration, host: "",
              "\(path):\(line): Invalid ProxyJump \"\(word)\" (hops are [user@]host[:port] or ssh:// URLs, comma-separated, or 'none'); refusing rather than connecting without the jump host"
            ))
        }
      default: break
      }
      blocks[blocks.count - 1].options.append((key, String(value), line))
    }
    self.blocks = blocks
    self.problems = problems
    self.path = path
  }

  static func isSpace(_ c: Character) -> Bool { c == " " || c == "\t" || c == "\r" || c == "\u{0C}" }

  /// The keyword (lower case) and the rest of the line; nil for blank and comment lines.
  static func keyword(_ raw: Substring) -> (String, Substring)? {
    var line = raw.drop(while: isSpace)
    while let last = line.last, isSpace(last) { line = line.dropLast() }
    guard !line.isEmpty, !line.hasPrefix("#") else { return nil }
    let end = line.firstIndex { isSpace($0) || $0 == "=" } ?? line.endIndex
    let key = line[..<end].lowercased()
    var rest = line[end...].drop(while: isSpace)
    if rest.first == "=" { rest = rest.dropFirst().drop(while: isSpace) }
    return (key, rest)
  }

  /// Whitespace-separated words; `"..."` keeps spaces inside one word.
  static func words(_ value: Substring) -> [String] {
    var out: [String] = []
    var current = ""
    var quoted = false
    var inWord = false
    for c in value {
      if c == "\"" {
        quoted.toggle()
        inWord = true
      } else if !quoted && isSpace(c) {
        if inWord { out.append(current) }
        current = ""
        inWord = false
      } else {
        current.append(c)
        inWord = true
      }
    }
    if inWord { out.append(current) }
    return out
  }

  /// A ProxyJump value: `none` is no hop; nil when a hop cannot be parsed.
  static func jumps(_ value: String) -> [SSHTarget]? {
    if value.lowercased() == "none" { return [] }
    guard !value.isEmpty else { return nil }
    var hops: [SSHTarget] = []
    for hop in value.split(separator: ",", omittingEmptySubsequences: false) {
      guard let target = SSHTarget.parse(jump: String(hop)), target.path == nil else { return nil }
      hops.append(target)
    }
    return hops
  }

  /// The settings for `host` (the name the user typed).
  public func resolve(_ host: String) throws(SSHError) -> Resolved {
    if var problem = problems.first {
      problem.host = host
      throw problem
    }
    var out = Resolved()
    for block in blocks where SSHConfig.matches(block.patterns, host) {
      for (key, value, line) in block.options {
        let words = SSHConfig.words(Substring(value))
        let first = words.first ?? ""
        switch key {
        case "hostname":
          if out.hostName == nil { out.hostName = first.replacingOccurrences(of: "%h", with: host) }
        case "user": if out.user == nil { out.user = first }
        case "port": if out.port == nil { out.port = SSHTarget.port(first) }
        case "identityfile": out.identityFiles.append(first)
        case "proxyjump": if out.proxyJump == nil { out.proxyJump = SSHConfig.jumps(first) }
        case "connecttimeout": if out.connectTimeout == nil { out.connectTimeout = Double(first) }
        case "serveraliveinterval": if out.serverAliveInterval == nil { out.serverAliveInterval = Int(first) }
        case "userknownhostsfile":
          if out.userKnownHostsFiles == nil {
            out.userKnownHostsFiles = first.lowercased() == "none" ? [] : words
          }
        case "globalknownhostsfile":
          if out.globalKnownHostsFiles == nil {
            out.globalKnownHostsFiles = first.lowercased() == "none" ? [] : words
          }
        case "stricthostkeychecking":
          if out.strictHostKeyChecking == nil {
            let setting = first.lowercased()
            if setting == "no" || setting == "off" {
              throw SSHError(
                .configuration, host: host,
                "\(path):\(line): StrictHostKeyChecking \(first) is refused: smcpair never accepts a changed or unknown host key silently; use 'accept-new' to record keys of new hosts"
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
