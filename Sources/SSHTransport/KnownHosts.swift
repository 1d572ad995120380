import Checksum
import Foundation

/// An OpenSSH known_hosts file: plain and hashed (`|1|salt|hash`) host patterns,
/// `[host]:port` entries, `@revoked` markers. Read on every check (it is small), appended to
/// for `accept-new`.
public struct KnownHosts: Sendable {
  public struct Entry: Sendable {
    public var line: Int
    public var keyType: String
    public var key: [UInt8]
    public var revoked: Bool
  }

  public let path: String

  public init(path: String) { self.path = path }

  /// How OpenSSH names a host in known_hosts: `host` on port 22, `[host]:port` otherwise.
  public static func name(host: String, port: Int) -> String { port == 22 ? host : "[\(host)]:\(port)" }

  /// Entries whose host pattern matches `host:port`, in file order.
  public func entries(host: String, port: Int) -> [Entry] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    let wanted = KnownHosts.name(host: host, port: port)
    var out: [Entry] = []
    for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      var fields = rawLine.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
      guard let first = fields.first, !first.hasPrefix("#") else { continue }
      var revoked = false
      if first.hasPrefix("@") {
        guard first == "@revoked" else { continue }  // @cert-authority: certificates are not supported
        revoked = true
        fields.removeFirst()
      }
      guard fields.count >= 3, let key = Data(base64Encoded: fields[2]) else { continue }
      if KnownHosts.patternMatches(fields[0], name: wanted) {
        out.append(Entry(line: index + 1, keyType: fields[1], key: Array(key), revoked: revoked))
      }
    }
    return out
  }

  /// A comma-separated pattern list (with `*`, `?`, `!` negation) or one hashed name.
  public static func patternMatches(_ patterns: String, name: String) -> Bool {
    if patterns.hasPrefix("|1|") {
      let parts = patterns.split(separator: "|", omittingEmptySubsequences: true)
      guard parts.count == 3, let salt = Data(base64Encoded: String(parts[1])),
        let hash = Data(base64Encoded: String(parts[2]))
      else { return false }
      return SHA1.hmac(key: Array(salt), message: Array(name.utf8)) == Array(hash)
    }
    var matched = false
    for pattern in patterns.split(separator: ",") {
      if pattern.hasPrefix("!") {
        if glob(String(pattern.dropFirst()), name) { return false }
      } else if glob(String(pattern), name) {
        matched = true
      }
    }
    return matched
  }

  /// OpenSSH-style wildcard match (`*` any run, `?` one character), case-insensitive.
  static func glob(_ pattern: String, _ text: String) -> Bool {
    let p = Array(pattern.lowercased())
    let t = Array(text.lowercased())
    var pi = 0
    var ti = 0
    var star = -1
    var mark = 0
    while ti < t.count {
      if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) {
        pi += 1
        ti += 1
      } else if pi < p.count && p[pi] == "*" {
        star = pi
        mark = ti
        pi += 1
      } else if star >= 0 {
        pi = star + 1
        mark += 1
        ti = mark
      } else {
        return false
      }
    }
    while pi < p.count && p[pi] == "*" { pi += 1 }
    return pi == p.count
  }

  /// Appends `host:port keyType key` (what OpenSSH's accept-new records).
  public func append(host: String, port: Int, keyType: String, key: [UInt8]) throws(SSHError) {
    let line = "\(KnownHosts.name(host: host, port: port)) \(keyType) \(Data(key).base64EncodedString())\n"
    let directory = (path as NSString).deletingLastPathComponent
    try? FileManager.default.createDirectory(
      atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    guard let handle = FileHandle(forWritingAtPath: path) ?? createFile() else {
      throw SSHError(.hostKeyUnknown, host: host, "cannot write \(path) to record the host key")
    }
    defer { try? handle.close() }
    do {
      let end = try handle.seekToEnd()
      if end > 0, let last = try? readLastByte(), last != 0x0A { try handle.write(contentsOf: Data([0x0A])) }
      try handle.write(contentsOf: Data(line.utf8))
    } catch {
      throw SSHError(.hostKeyUnknown, host: host, "cannot write \(path): \(error.localizedDescription)")
    }
  }

  private func createFile() -> FileHandle? {
    FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
    return FileHandle(forWritingAtPath: path)
  }

  private func readLastByte() throws -> UInt8? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    return data.last
  }

  /// `SHA256:` + unpadded base64 of the key blob, as `ssh-keygen -l` prints it.
  public static func fingerprint(_ key: [UInt8]) -> String {
    var hasher = SHA256()
    hasher.update(key)
    let hex = hasher.finalizeHex()
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
      let next = hex.index(index, offsetBy: 2)
      bytes.append(UInt8(hex[index..<next], radix: 16)!)
      index = next
    }
    var text = Data(bytes).base64EncodedString()
    while text.hasSuffix("=") { text.removeLast() }
    return "SHA256:" + text
  }
}
