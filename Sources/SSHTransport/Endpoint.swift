import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Everything needed to reach one host, resolved in one place from the target, the options
/// and ssh_config, as `ssh -G` resolves it: the connection, each of its jump hops and `hosts
/// trust` all use it.
public struct Endpoint: Sendable {
  /// The address connected to (the config's `HostName`, else the target's host).
  public private(set) var host: String
  public private(set) var port: Int
  /// The target's user, else the config's `User`, else the local account.
  public private(set) var user: String
  /// `user@host:port`, IPv6 addresses in brackets.
  public private(set) var label: String
  var knownHosts: KnownHosts
  var identityHints: [String]
  /// The jump hops, first first, each resolved here too (with the config's settings for its
  /// own name, and no further hops of its own).
  public private(set) var hops: [Endpoint]
  /// The options with the config's timeouts and StrictHostKeyChecking applied.
  var options: SSHOptions

  /// Resolves `target` with `options` (and their ssh_config, else `~/.ssh/config`).
  public static func resolve(_ target: SSHTarget, options: SSHOptions = SSHOptions()) throws(SSHError)
    -> Endpoint
  {
    try Endpoint(target, options: options)
  }

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
    let hopOptions = SSHSession.withoutJumps(effective)
    var hops: [Endpoint] = []
    for hop in options.proxyJump ?? settings.proxyJump ?? [] {
      hops.append(try Endpoint(hop, options: hopOptions))
    }
    self.hops = hops
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
