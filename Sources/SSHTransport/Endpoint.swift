import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Everything needed to reach one host, resolved in one place from the target, the options
/// and ssh_config: the connection, each jump hop and `hosts trust` all use it.
struct Endpoint {
  var host: String
  var port: Int
  var user: String
  /// `user@host:port`, IPv6 addresses in brackets.
  var label: String
  var knownHosts: KnownHosts
  var identityHints: [String]
  var jumps: [SSHTarget]
  /// The options with the config's timeouts and StrictHostKeyChecking applied.
  var options: SSHOptions

  init(_ target: SSHTarget, options: SSHOptions) throws(SSHError) {
    if let unusable = options.unusableJump {
      throw SSHError(.configuration, host: target.description, unusable)
    }
    let config = options.config ?? SSHConfig()
    let settings = try config.resolve(target.host)
    let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
    host = settings.hostName ?? target.host
    port = target.port ?? settings.port ?? 22
    // OpenSSH's default user is the local account (getpwuid), not $USER and not root.
    user = target.user ?? settings.user ?? Endpoint.localUser()
    label = SSHTarget.label(user: user, host: host, port: port)
    var effective = options
    if let timeout = settings.connectTimeout, options.connectTimeout == SSHOptions().connectTimeout {
      effective.connectTimeout = timeout
    }
    if let interval = settings.serverAliveInterval { effective.serverAliveInterval = interval }
    if settings.strictHostKeyChecking == "accept-new" { effective.acceptNew = true }
    self.options = effective
    let userFiles =
      options.knownHostsFile.map { [$0] } ?? settings.userKnownHostsFiles
      ?? KnownHosts.defaultUserFiles(home: home)
    let globalFiles = settings.globalKnownHostsFiles ?? KnownHosts.defaultGlobalFiles
    knownHosts = KnownHosts(
      userFiles: userFiles.map { Endpoint.expand($0, home) },
      globalFiles: globalFiles.map { Endpoint.expand($0, home) })
    let host = host
    identityHints = settings.identityFiles.map {
      Endpoint.expand($0.replacingOccurrences(of: "%h", with: host), home)
    }
    jumps = options.proxyJump ?? settings.proxyJump ?? []
  }

  static func expand(_ path: String, _ home: String) -> String {
    path.hasPrefix("~/") ? home + path.dropFirst(1) : path
  }

  static func localUser() -> String {
    if let entry = getpwuid(getuid()), let name = entry.pointee.pw_name { return String(cString: name) }
    return ProcessInfo.processInfo.environment["USER"] ?? "root"
  }
}

/// What known_hosts says about the key a host presents (connections and `hosts trust`).
public enum HostKeyVerdict: Sendable {
  case revoked(KnownHosts.Entry)
  case known(KnownHosts.Entry)
  /// Entries for the host exist and none holds this key (any key type: stricter than OpenSSH).
  case changed([KnownHosts.Entry])
  case unknown

  public init(key: [UInt8], known: [KnownHosts.Entry]) {
    if let revoked = known.first(where: { $0.marker == .revoked && $0.key == key }) {
      self = .revoked(revoked)
      return
    }
    let plain = known.filter { $0.marker == .none }
    if let match = plain.first(where: { $0.key == key }) {
      self = .known(match)
    } else if !plain.isEmpty {
      self = .changed(plain)
    } else {
      self = .unknown
    }
  }
}
