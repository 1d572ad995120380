import CLibSSH2
import Foundation
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// How to reach hosts: identities, known_hosts, timeouts.
public struct SSHOptions: Sendable {
  /// Identity files given on the command line (tried before the config's and the defaults).
  public var identityFiles: [String] = []
  /// The user known_hosts file, instead of the config's `UserKnownHostsFile` (default
  /// `~/.ssh/known_hosts ~/.ssh/known_hosts2`); the global files are read either way.
  public var knownHostsFile: String?
  /// Record keys of hosts not yet known (OpenSSH's accept-new). Changed keys are refused always.
  public var acceptNew = false
  public var connectTimeout: Double = 10
  /// Seconds without any progress before an operation fails.
  public var inactivityTimeout: Double = 60
  /// What a command may cost unless its caller says otherwise: 64 KiB of stdout, 64 KiB of
  /// stderr, 30 s in all (`CommandLimits.standard`).
  public var commandLimits = CommandLimits.standard
  public var serverAliveInterval = 15
  public var useAgent = true
  /// Passphrase for encrypted keys (else `SMCPAIR_KEY_PASSPHRASE`, else a TTY prompt).
  public var passphrase: String?
  /// The ssh_config to honour; nil reads `~/.ssh/config`.
  public var config: SSHConfig?
  /// Jump hosts (overrides ProxyJump from the config); each is reached through the previous.
  public var proxyJump: [SSHTarget]?
  /// Set when the jump host was named but cannot be used (e.g. `file:line: ...` of an
  /// inventory `jump:` that does not parse): connecting fails with it, never goes direct.
  public var unusableJump: String?
  /// Connections a large download may use (`download`): the extra ones are made only when
  /// they authenticate without a prompt. 1 keeps every download on its session.
  public var downloadConnections = 2
  /// False for a connection that must not ask at the terminal (a download's extra
  /// connection): an encrypted key is used only with a passphrase given or already typed.
  var mayPrompt = true

  public init() {}
}

/// The host key a session verified.
public struct VerifiedHostKey: Sendable {
  public var type: String
  public var fingerprint: String
  /// True when this connection recorded it (accept-new).
  public var recorded: Bool
  public var knownHostsFile: String
}

/// libssh2 is initialised once per process and never torn down.
enum LibSSH2 {
  static let initialized: Int32 = libssh2_init(0)
  static let eagain = Int32(LIBSSH2_ERROR_EAGAIN)

  static func hostKeyTypeName(_ type: Int32) -> String {
    switch type {
    case LIBSSH2_HOSTKEY_TYPE_RSA: "ssh-rsa"
    case LIBSSH2_HOSTKEY_TYPE_DSS: "ssh-dss"
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: "ecdsa-sha2-nistp256"
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: "ecdsa-sha2-nistp384"
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: "ecdsa-sha2-nistp521"
    case LIBSSH2_HOSTKEY_TYPE_ED25519: "ssh-ed25519"
    default: "unknown"
    }
  }

  static let supportedHostKeyTypes = [
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
  ]
}

/// One authenticated SSH connection. Use it from one thread at a time (libssh2 sessions are
/// not thread-safe); calls block that thread, never the Swift cooperative pool.
public final class SSHSession: @unchecked Sendable {
  /// `user@host:port` as connected.
  public let label: String
  public let user: String
  public let hostKey: VerifiedHostKey
  /// How authentication succeeded, e.g. "identity file ~/.ssh/id_ed25519".
  public let authMethod: String
  let session: OpaquePointer
  let socket: Int32
  /// The options this session was made with (timeouts, command limits).
  public let options: SSHOptions
  /// Jump hosts this session tunnels through (kept alive with it).
  let tunnel: JumpTunnel?
  private var closed = false
  /// After `close()`: every channel of this session is gone with it.
  var isClosed: Bool { closed }
  private var lastKeepalive = Date()
  /// The target and options `connect` was given: a download's extra connection repeats them.
  private(set) var origin: (target: SSHTarget, options: SSHOptions)?

  // MARK: - connect

  /// Connects, verifies the host key strictly and authenticates.
  public static func connect(_ target: SSHTarget, options: SSHOptions = SSHOptions()) throws(SSHError)
    -> SSHSession
  {
    _ = LibSSH2.initialized
    let endpoint = try Endpoint(target, options: options)
    // Read known_hosts before any byte goes to the host: an unreadable file or line is a
    // refusal, whatever the host presents.
    let known = try endpoint.knownHosts.entries(host: endpoint.host, port: endpoint.port)
    let socket: Int32
    let tunnel: JumpTunnel?
    // Each hop is reached through the previous one; the last carries this connection.
    var previous: SSHSession?
    for hop in endpoint.hops {
      let hopKnown = try hop.knownHosts.entries(host: hop.host, port: hop.port)
      if let through = previous {
        let hopTunnel = try JumpTunnel(through: through, to: hop.host, port: hop.port)
        previous = try SSHSession(
          socket: hopTunnel.localSocket, tunnel: hopTunnel, endpoint: hop, known: hopKnown)
      } else {
        let hopSocket = try connectSocket(
          host: hop.host, port: hop.port, timeout: hop.options.connectTimeout, label: hop.label)
        previous = try SSHSession(socket: hopSocket, tunnel: nil, endpoint: hop, known: hopKnown)
      }
    }
    if let last = previous {
      let lastTunnel = try JumpTunnel(through: last, to: endpoint.host, port: endpoint.port)
      tunnel = lastTunnel
      socket = lastTunnel.localSocket
    } else {
      tunnel = nil
      socket = try connectSocket(
        host: endpoint.host, port: endpoint.port, timeout: endpoint.options.connectTimeout,
        label: endpoint.label)
    }
    let session = try SSHSession(socket: socket, tunnel: tunnel, endpoint: endpoint, known: known)
    session.origin = (target, options)
    return session
  }

  /// Another connection to the same host, for a transfer in parallel: nil when it would need
  /// a prompt (a passphrase not typed yet), when it fails, or when the host presents a
  /// different key than this session verified. It records no host key.
  func companion() -> SSHSession? {
    guard let origin else { return nil }
    var options = origin.options
    options.mayPrompt = false
    options.acceptNew = false
    guard let other = try? SSHSession.connect(origin.target, options: options) else { return nil }
    guard other.hostKey.fingerprint == hostKey.fingerprint else {
      other.close()
      return nil
    }
    return other
  }

  /// Options for a jump hop: the same keys and known_hosts, no further jumps of its own.
  static func withoutJumps(_ options: SSHOptions) -> SSHOptions {
    var hop = options
    hop.proxyJump = []
    hop.unusableJump = nil
    return hop
  }

  /// What `hosts trust` learns from a host without logging in.
  public struct ProbedHostKey: Sendable {
    public var host: String
    public var port: Int
    public var type: String
    public var key: [UInt8]
    /// The files the key is checked against (and recorded in: the first user file).
    public var knownHosts: KnownHosts
  }

  /// Connects and reads the host key without authenticating (for `hosts trust`).
  public static func probeHostKey(_ target: SSHTarget, options: SSHOptions = SSHOptions()) throws(SSHError)
    -> ProbedHostKey
  {
    _ = LibSSH2.initialized
    let endpoint = try Endpoint(target, options: options)
    guard endpoint.hops.isEmpty else {
      throw SSHError(
        .configuration, host: endpoint.label,
        "hosts trust does not go through jump hosts; record the key with ssh or ssh-keyscan on the jump host")
    }
    let label = endpoint.label
    let socket = try connectSocket(
      host: endpoint.host, port: endpoint.port, timeout: endpoint.options.connectTimeout, label: label)
    defer { Glibc.close(socket) }
    guard let session = libssh2_session_init_ex(nil, nil, nil, nil) else {
      throw SSHError(.handshake, host: label, "libssh2 could not create a session")
    }
    defer {
      libssh2_session_disconnect_ex(session, SSH_DISCONNECT_BY_APPLICATION, "bye", "")
      libssh2_session_free(session)
    }
    libssh2_session_set_blocking(session, 0)
    let known = try endpoint.knownHosts.entries(host: endpoint.host, port: endpoint.port)
    preferHostKeyTypes(session, known)
    preferFastCiphers(session)
    var deadline = Date().addingTimeInterval(endpoint.options.connectTimeout)
    try retry(session, socket, label, "SSH handshake", deadline: &deadline, refresh: false) {
      libssh2_session_handshake(session, socket)
    }
    var length = 0
    var type: Int32 = 0
    guard let raw = libssh2_session_hostkey(session, &length, &type) else {
      throw SSHError(.handshake, host: label, "the server sent no host key")
    }
    return ProbedHostKey(
      host: endpoint.host, port: endpoint.port, type: LibSSH2.hostKeyTypeName(type),
      key: Array(UnsafeRawBufferPointer(start: raw, count: length)), knownHosts: endpoint.knownHosts)
  }

  /// Ask for the host key types known_hosts holds for this host, in file order, so the
  /// server presents one we can check (libssh2 would otherwise prefer ECDSA).
  static func preferHostKeyTypes(_ session: OpaquePointer, _ known: [KnownHosts.Entry]) {
    var preferred: [String] = []
    for entry in known
    where entry.marker == .none && LibSSH2.supportedHostKeyTypes.contains(entry.keyType)
      && !preferred.contains(entry.keyType)
    {
      preferred.append(entry.keyType)
    }
    if !preferred.isEmpty {
      _ = libssh2_session_method_pref(session, LIBSSH2_METHOD_HOSTKEY, preferred.joined(separator: ","))
    }
  }

  /// AES-128 in CTR mode first: libssh2 1.10 decrypts block by block, so its cipher is most of
  /// a pull's CPU, and AES-128 needs 10 rounds to AES-256's 14 (a 160 MB pull with a known
  /// digest, 4 alternated runs on a quiet machine: median 1.41 s → 1.27 s; scp 1.09 s). Both
  /// are in OpenSSH's default list; CBC modes stay as fallbacks for old servers, and nothing
  /// weaker is offered.
  static let cipherPreference = "aes128-ctr,aes192-ctr,aes256-ctr,aes256-cbc,aes192-cbc,aes128-cbc"

  static func preferFastCiphers(_ session: OpaquePointer) {
    _ = libssh2_session_method_pref(session, LIBSSH2_METHOD_CRYPT_CS, cipherPreference)
    _ = libssh2_session_method_pref(session, LIBSSH2_METHOD_CRYPT_SC, cipherPreference)
  }

  init(socket: Int32, tunnel: JumpTunnel?, endpoint: Endpoint, known: [KnownHosts.Entry]) throws(SSHError) {
    let label = endpoint.label
    let options = endpoint.options
    guard let created = libssh2_session_init_ex(nil, nil, nil, nil) else {
      Glibc.close(socket)
      throw SSHError(.handshake, host: label, "libssh2 could not create a session")
    }
    self.session = created
    self.socket = socket
    self.tunnel = tunnel
    self.options = options
    self.label = label
    self.user = endpoint.user
    libssh2_session_set_blocking(created, 0)
    SSHSession.preferHostKeyTypes(created, known)
    SSHSession.preferFastCiphers(created)
    var deadline = Date().addingTimeInterval(options.connectTimeout)
    do throws(SSHError) {
      try SSHSession.retry(created, socket, label, "SSH handshake", deadline: &deadline, refresh: false) {
        libssh2_session_handshake(created, socket)
      }
      hostKey = try SSHSession.verifyHostKey(
        created, host: endpoint.host, port: endpoint.port, label: label, knownHosts: endpoint.knownHosts,
        known: known, acceptNew: options.acceptNew)
      libssh2_keepalive_config(created, 1, UInt32(max(1, options.serverAliveInterval)))
      deadline = Date().addingTimeInterval(options.connectTimeout)
      authMethod = try Authenticator(
        session: created, socket: socket, label: label, user: endpoint.user, options: options
      )
      .authenticate(identityHints: endpoint.identityHints, deadline: &deadline)
    } catch {
      libssh2_session_disconnect_ex(created, SSH_DISCONNECT_BY_APPLICATION, "bye", "")
      libssh2_session_free(created)
      Glibc.close(socket)
      throw error
    }
  }

  deinit { close() }

  /// True after `abort()`: the connection is known to be dead.
  public private(set) var broken = false

  /// The connection is dead (a peer that stopped answering): shut the socket down so that
  /// every further call fails at once instead of waiting out its timeout, and so that
  /// `close()` and the channels' clean-up do not try to talk to the peer.
  public func abort() {
    guard !closed, !broken else { return }
    broken = true
    Glibc.shutdown(socket, Int32(SHUT_RDWR))
  }

  /// Orderly disconnect (after `abort()`: just the release). Safe to repeat.
  public func close() {
    guard !closed else { return }
    closed = true
    if broken {
      libssh2_session_free(session)
      Glibc.close(socket)
      tunnel?.close()
      return
    }
    libssh2_session_set_blocking(session, 1)
    libssh2_session_set_timeout(session, 2000)
    libssh2_session_disconnect_ex(session, SSH_DISCONNECT_BY_APPLICATION, "smcpair done", "")
    libssh2_session_free(session)
    Glibc.close(socket)
    tunnel?.close()
  }

  // MARK: - host key

  static func verifyHostKey(
    _ session: OpaquePointer, host: String, port: Int, label: String, knownHosts: KnownHosts,
    known: [KnownHosts.Entry], acceptNew: Bool
  ) throws(SSHError) -> VerifiedHostKey {
    var length = 0
    var type: Int32 = 0
    guard let raw = libssh2_session_hostkey(session, &length, &type) else {
      throw SSHError(.handshake, host: label, "the server sent no host key")
    }
    let key = Array(UnsafeRawBufferPointer(start: raw, count: length))
    let typeName = LibSSH2.hostKeyTypeName(type)
    let verdict = HostKeyVerdict(key: key, known: known)
    let fingerprint = KnownHosts.fingerprint(key)
    let name = KnownHosts.lookupName(host: host, port: port)
    switch verdict {
    case .revoked(let entry):
      throw SSHError(
        .hostKeyRevoked, host: label,
        "the host key \(fingerprint) is marked @revoked in \(entry.location); refusing")
    case .known(let entry):
      return VerifiedHostKey(
        type: typeName, fingerprint: fingerprint, recorded: false, knownHostsFile: entry.file)
    case .changed(let entries):
      let lines = entries.map { "\($0.location) (\($0.keyType) \(KnownHosts.fingerprint($0.key)))" }
      let stale = entries[0]
      throw SSHError(
        .hostKeyMismatch, host: label,
        "HOST KEY MISMATCH for \(name): the server presents \(typeName) \(fingerprint) but known_hosts has \(lines.joined(separator: ", ")). Someone may be intercepting the connection, or the host was reinstalled. If you know the key changed legitimately, remove line \(stale.line) of \(stale.file) (ssh-keygen -R '\(name)' -f \(stale.file)) and run 'smcpair hosts trust'."
      )
    case .unknown:
      guard acceptNew else {
        throw SSHError(
          .hostKeyUnknown, host: label,
          "host key of \(name) is not known (\(typeName) \(fingerprint)); not in \(knownHosts.files.joined(separator: ", ")). Check the fingerprint with the host's owner, then run 'smcpair hosts trust \(label)' or pass --accept-new."
        )
      }
      try knownHosts.append(host: host, port: port, keyType: typeName, key: key)
      return VerifiedHostKey(
        type: typeName, fingerprint: fingerprint, recorded: true, knownHostsFile: knownHosts.recordFile ?? "")
    }
  }

  // MARK: - non-blocking plumbing

  /// Repeats a libssh2 call while it says EAGAIN, waiting on the socket in between.
  @discardableResult
  static func retry(
    _ session: OpaquePointer, _ socket: Int32, _ label: String, _ what: String, deadline: inout Date,
    refresh: Bool,
    inactivity: Double = 60, _ call: () -> Int32
  ) throws(SSHError) -> Int32 {
    while true {
      let rc = call()
      if rc == LibSSH2.eagain {
        try wait(session, socket, label, what, deadline: deadline)
        if refresh { deadline = Date().addingTimeInterval(inactivity) }
        continue
      }
      if rc < 0 { throw error(session, label, what, rc) }
      return rc
    }
  }

  static func wait(_ session: OpaquePointer, _ socket: Int32, _ label: String, _ what: String, deadline: Date)
    throws(SSHError)
  {
    let directions = libssh2_session_block_directions(session)
    var events: Int16 = 0
    if directions & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { events |= Int16(POLLIN) }
    if directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { events |= Int16(POLLOUT) }
    if events == 0 { events = Int16(POLLIN) }
    var entry = pollfd(fd: socket, events: events, revents: 0)
    let left = deadline.timeIntervalSinceNow
    guard left > 0 else {
      throw SSHError(.timeout, host: label, "\(what) timed out")
    }
    let milliseconds = Int32(min(left, 1.0) * 1000) + 1
    do {
      _ = try retryingInterrupts { poll(&entry, 1, milliseconds) }
    } catch {
      throw SSHError(.disconnected, host: label, "\(what): \(error)")
    }
  }

  static func error(_ session: OpaquePointer, _ label: String, _ what: String, _ rc: Int32) -> SSHError {
    var message: UnsafeMutablePointer<CChar>?
    var length: Int32 = 0
    libssh2_session_last_error(session, &message, &length, 0)
    let text = message.map { String(cString: $0) } ?? "error \(rc)"
    let code: SSHError.Code =
      switch rc {
      case LIBSSH2_ERROR_TIMEOUT: .timeout
      case LIBSSH2_ERROR_SOCKET_DISCONNECT, LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_SOCKET_SEND:
        .disconnected
      case LIBSSH2_ERROR_KEX_FAILURE, LIBSSH2_ERROR_BANNER_RECV, LIBSSH2_ERROR_BANNER_SEND: .handshake
      default: .channel
      }
    return SSHError(code, host: label, "\(what) failed: \(text)")
  }

  func retry(_ what: String, _ call: () -> Int32) throws(SSHError) -> Int32 {
    var deadline = Date().addingTimeInterval(options.inactivityTimeout)
    return try SSHSession.retry(
      session, socket, label, what, deadline: &deadline, refresh: false,
      inactivity: options.inactivityTimeout, call)
  }

  /// Waits for the socket (one poll round), sending keepalives when idle.
  func waitForSocket(_ what: String, deadline: Date) throws(SSHError) {
    if Date().timeIntervalSince(lastKeepalive) >= Double(options.serverAliveInterval) {
      var next: Int32 = 0
      _ = libssh2_keepalive_send(session, &next)
      lastKeepalive = Date()
    }
    try SSHSession.wait(session, socket, label, what, deadline: deadline)
  }

  func lastErrorCode() -> Int32 { libssh2_session_last_errno(session) }

  // MARK: - sockets

  static func connectSocket(host: String, port: Int, timeout: Double, label: String) throws(SSHError) -> Int32
  {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_family = AF_UNSPEC
    var result: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(host, String(port), &hints, &result)
    guard status == 0, let first = result else {
      throw SSHError(
        .resolve, host: label, "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
    }
    defer { freeaddrinfo(result) }
    var lastError = "no address"
    var entry: UnsafeMutablePointer<addrinfo>? = first
    let deadline = Date().addingTimeInterval(timeout)
    while let info = entry {
      entry = info.pointee.ai_next
      let fd = Glibc.socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
      guard fd >= 0 else { continue }
      _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
      _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
      var one: Int32 = 1
      setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
      if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return fd }
      if errno == EINPROGRESS {
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let left = max(0, deadline.timeIntervalSinceNow)
        if poll(&poller, 1, Int32(left * 1000)) > 0 {
          var soError: Int32 = 0
          var length = socklen_t(MemoryLayout<Int32>.size)
          getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length)
          if soError == 0 { return fd }
          lastError = Errno(rawValue: soError).description
        } else {
          lastError = "no answer within \(Int(timeout)) s"
        }
      } else {
        lastError = Errno.current.description
      }
      Glibc.close(fd)
    }
    throw SSHError(.connect, host: label, "cannot connect to \(host) port \(port): \(lastError)")
  }
}
