import AgentProtocol
import Alignment
import Checksum
import Foundation
import Inventory
import SSHTransport
import Support

/// What the preflight found on a host.
public struct Preflight: Sendable {
  public var hostKey = ""
  public var auth = ""
  public var sudo = ""
  /// `current`, `deployed`, `upgraded`.
  public var agent = ""
  public var agentVersion = ""
  public var privileges = ""
  public var smcDump = ""
  public var freeDisk = ""
  public var kernel = ""
  /// The capture engine and why it was chosen.
  public var engine = ""
}

/// Where one side is: the agent's session state, or what the coordinator knows beyond it.
/// The raw values are what session.json records.
public enum SideState: String, Sendable, CaseIterable {
  case notStarted = "not started"
  case prepared, capturing, stopped, finalized
  /// The agent or the connection was lost while capturing.
  case lost

  public init(_ state: CaptureState) {
    switch state {
    case .prepared: self = .prepared
    case .capturing: self = .capturing
    case .stopped: self = .stopped
    case .finalized: self = .finalized
    }
  }
}

/// The live counters of one side, from the agent's `status`.
public struct SideProgress: Sendable {
  public var state = SideState.notStarted
  public var packets: Int64 = 0
  public var bytes: Int64 = 0
  /// Packets the kernel or interface dropped (sum over interfaces).
  public var drops: Int64 = 0
  public var stopReason: StopReason?
  /// Per captured interface, as the agent counts them.
  public var interfaces: [InterfaceCounters] = []
}

/// One host of one pair through a capture: connect, preflight, deploy, arm, watch, stop,
/// pull. Its methods run on one thread at a time (the libssh2 session is not thread-safe).
public final class CaptureSide: @unchecked Sendable {
  public let role: Side
  public let access: HostAccess
  /// The agent's session name (unique per pair and side; lab hosts share a file system).
  public let remoteSession: String
  public var name: String { access.host.name }

  public internal(set) var preflight = Preflight()
  public internal(set) var progress = SideProgress()
  public internal(set) var failure: CaptureFailure?
  /// The agent ended or the connection broke while capturing: the file ends early.
  public internal(set) var endedEarly: String?
  public internal(set) var agentVersion: String?
  /// Remote files reported by `finalize` (path, size, sha256).
  public internal(set) var remoteFiles: [(path: String, size: Int64, sha256: String)] = []
  public internal(set) var localFiles: [String] = []
  /// What became of the capture files on the host: "removed" after the verified pull,
  /// "kept (...)" or "left: <why>"; nil while undecided (a failed pull keeps them).
  public internal(set) var remoteRetention: String?
  public internal(set) var startedNanoseconds: Int64?
  public internal(set) var stoppedNanoseconds: Int64?
  /// Agent clock − workstation clock and half the round trip (the best of a few probes).
  public internal(set) var lastProbe: (offset: Double, halfWidth: Double)?
  /// Per-host log: every step with its UTC time.
  public private(set) var log: [String] = []
  private let logLock = NSLock()

  var ssh: SSHSession?
  var agent: RemoteAgent?
  /// The engine capturing here (the agent until the preflight chose otherwise).
  public internal(set) var engine = CaptureEngine.agent
  /// The host's own tool capturing, when `engine` is not the agent.
  var tool: HostToolCapture?
  var toolPlan: CapturePlan?
  var lastToolPoll = Date.distantPast
  /// SMC dump devices smcdump-ex left behind (it should delete its own on SIGINT).
  public internal(set) var leftDevices: [String] = []

  public init(role: Side, access: HostAccess, remoteSession: String) {
    self.role = role
    self.access = access
    self.remoteSession = remoteSession
  }

  func note(_ text: String) {
    let line = "\(UTCStamp.now()) \(text)"
    logLock.withLock { log.append(line) }
  }

  func fail(_ failure: CaptureFailure) {
    if self.failure == nil { self.failure = failure }
    note("FAILED \(failure.step): \(failure.message)")
  }

  func session(_ step: String) throws(CaptureFailure) -> SSHSession {
    if let ssh { return ssh }
    note("connecting to \(access.target)")
    let session = try access.connect(step: step)
    ssh = session
    return session
  }

  func run(_ command: String, step: String) throws(CaptureFailure) -> CommandOutput {
    let ssh = try session(step)
    do {
      return try ssh.run(command, purpose: step)
    } catch {
      throw CaptureFailure(host: name, step: step, error.message)
    }
  }

  // MARK: - preflight and deploy

  /// Connects, checks sudo, the agent binary against `localAgent` (deploying it when missing
  /// or different), starts the agent and reads its `hello`, and the free disk.
  func prepareHost(
    localAgent: LocalAgent, smcDump: SMCDumpSetting, engineSetting: CaptureEngineSetting? = nil
  ) throws(CaptureFailure) {
    let ssh = try session("connecting")
    // The connection facts and the sudo probe are `hosts check`'s own (HostCheck).
    var host = HostCheck(name: name)
    host.record(ssh)
    note("connected: \(host.keyType) host key, \(host.auth)")
    preflight.hostKey = "\(host.keyType) \(host.fingerprint)"
    preflight.auth = host.auth
    if access.usesSudo {
      let refusal: String?
      do {
        refusal = try HostCheck.sudoRefusal(ssh)
      } catch {
        throw CaptureFailure(host: name, step: "checking sudo -n", error.message)
      }
      if let refusal {
        preflight.sudo = "refused"
        throw CaptureFailure(
          host: name, step: "checking sudo -n",
          "'sudo -n true' failed (\(refusal)); allow passwordless sudo for \(access.host.user), or log in as root with become: none"
        )
      }
      preflight.sudo = "sudo -n"
    } else {
      preflight.sudo = access.host.user == "root" ? "root" : "none"
    }
    let setting = engineSetting ?? access.host.engine
    if setting != .agent {
      let facts: HostFacts
      do {
        facts = try HostFacts.read(ssh, host: access.host)
      } catch {
        throw CaptureFailure(host: name, step: "choosing the capture engine", error.message)
      }
      preflight.kernel = facts.kernel
      let decision = EngineDecision.choose(
        setting, facts: facts, agentArchitecture: localAgent.architecture,
        deployAllowed: access.host.deployAgent,
        dumpWanted: smcDump != .off)
      switch decision {
      case .failure(let refusal):
        preflight.engine = "none"
        throw CaptureFailure(host: name, step: "choosing the capture engine", refusal.message)
      case .success(let chosen):
        engine = chosen.engine
        preflight.engine = "\(chosen.engine.rawValue) (\(chosen.reason))"
        note("engine: \(preflight.engine)")
        if chosen.engine != .agent {
          let capture = HostToolCapture(
            engine: chosen.engine, facts: facts, access: access, session: remoteSession)
          if let problem = HostToolCapture.folderProblem(capture.folder) {
            throw CaptureFailure(host: name, step: "choosing the capture engine", problem)
          }
          tool = capture
          preflight.agent = "none"
          preflight.privileges =
            access.host.user == "root" ? "root" : (access.usesSudo ? "sudo -n" : "login user")
          preflight.smcDump =
            chosen.engine == .smcdumpEx
            ? "smcdump-ex -m all (kernel: \(facts.dumpSupport.available ? "dump" : "no documented dump"))"
            : "none (tcpdump cannot turn the SMC dump on)"
          preflight.freeDisk = "not checked"
          return
        }
      }
    } else {
      preflight.engine = "agent (engine: agent)"
    }
    // One exec for the agent's digest, the free disk and - when the digest is the local
    // agent's - the agent itself: each exec is a round trip and a login shell on the host.
    let checked = try startCheckedAgent(expectedSHA256: localAgent.sha256)
    let free = Self.freeMiB(fromDF: checked.df)
    preflight.freeDisk = free.map { "\($0) MiB free" } ?? "unknown"
    if let free, free < Self.minimumFreeMiB {
      if let stream = checked.agent { _ = try? stream.close() }
      throw CaptureFailure(
        host: name, step: "checking free disk",
        "only \(free) MiB free where the agent writes (\(access.host.agentRoot ?? "/var/lib/smcpair/agent")); free some space or point agent_root at a larger file system"
      )
    }
    if let stream = checked.agent {
      preflight.agent = "current"
      agent = RemoteAgent(stream: stream, host: name)
    } else {
      try deployAgent(localAgent, remoteDigest: checked.digest)
      try startAgent()
    }
    note("agent started (\(preflight.agent))")
    guard let agent else {
      throw CaptureFailure(host: name, step: "starting the agent", "the agent did not start")
    }
    try check(try agent.call(.hello), smcDump: smcDump)
  }

  /// What `hello` says against what the capture needs: privileges, and the SMC dump setting.
  func check(_ hello: HelloReply, smcDump: SMCDumpSetting) throws(CaptureFailure) {
    agentVersion = hello.agentVersion
    preflight.agentVersion = hello.agentVersion
    preflight.kernel = hello.kernel
    guard hello.privileges.sufficient else {
      preflight.privileges = "insufficient"
      throw CaptureFailure(
        host: name, step: "agent privileges",
        "the agent runs without root or CAP_NET_RAW+CAP_NET_ADMIN; log in as root or set become: sudo")
    }
    preflight.privileges = hello.privileges.root ? "root" : "capabilities"
    let supported = hello.smcDump.supported
    let detail = hello.smcDump.detail
    switch smcDump {
    case .required where !supported:
      throw CaptureFailure(
        host: name, step: "SMC dump support",
        "smc_dump is 'required' but this kernel has no SMC dump (\(detail)); use smc_dump: auto to capture the NIC only"
      )
    case .device(let device):
      let interfaces = hello.interfaces
      guard interfaces.contains(device) else {
        throw CaptureFailure(
          host: name, step: "SMC dump device",
          "smc_dump names '\(device)', which is not an interface of this host; interfaces: \(interfaces.joined(separator: ", "))"
        )
      }
      preflight.smcDump = "device \(device)"
    case .off: preflight.smcDump = "off"
    default: preflight.smcDump = supported ? "kernel dump" : "none (NIC only)"
    }
    note("preflight ok: agent \(preflight.agent) \(preflight.agentVersion), \(preflight.smcDump)")
  }

  /// Uploads the agent when the host's copy is missing or differs from `local` (SHA-256).
  func deployAgent(_ local: LocalAgent, remoteDigest: String?) throws(CaptureFailure) {
    let path = access.host.agentPath
    if remoteDigest == local.sha256 {
      preflight.agent = "current"
      return
    }
    guard access.host.deployAgent else {
      throw CaptureFailure(
        host: name, step: "deploying the agent",
        "the host's agent at \(path) is \(remoteDigest == nil ? "missing" : "a different build") and deploy_agent: false forbids copying it; install it there, or use engine: tcpdump or smcdump-ex"
      )
    }
    preflight.agent = remoteDigest == nil ? "deployed" : "upgraded"
    note("\(preflight.agent == "deployed" ? "deploying" : "upgrading") the agent at \(path)")
    let directory = parentFolder(of: path)
    let step = "deploying the agent"
    if !directory.isEmpty {
      let made = try run(access.privileged(["mkdir", "-p", "--", directory]), step: step)
      guard made.exitStatus == 0 else {
        throw CaptureFailure(host: name, step: step, "cannot create \(directory): \(made.stderrText)")
      }
    }
    let ssh = try session(step)
    // The new binary is written beside the old one under a temporary name and renamed over
    // it, as `upload` does: a rename is atomic, so a running agent keeps its file and two
    // deploys to one shared path (an NFS home, or the lab's hosts, which share a file system)
    // cannot collide. `install` straight to the path unlinks and recreates it: two at once
    // failed with "File exists" in 59 of 200 tries here (and once in CI).
    do {
      if access.usesSudo {
        let temporary = "\(path).new-\(UInt32.random(in: 0...UInt32.max))"
        // Upload as the login user, then install as root.
        let staging = "/tmp/.smcpair-agent-\(UInt32.random(in: 0...UInt32.max))"
        _ = try ssh.upload(local.path, to: staging, mode: 0o700)
        let installed = try ssh.run(
          access.privileged(["install", "-m", "0755", "--", staging, temporary]),
          purpose: "installing the agent")
        _ = try? ssh.run(
          RemoteCommand.join(["rm", "-f", "--", staging]), purpose: "removing the staged agent")
        guard installed.exitStatus == 0 else {
          throw CaptureFailure(host: name, step: step, "sudo install failed: \(installed.stderrText)")
        }
        let renamed = try ssh.run(
          access.privileged(["mv", "-f", "--", temporary, path]), purpose: "putting the agent in place")
        guard renamed.exitStatus == 0 else {
          _ = try? ssh.run(
            access.privileged(["rm", "-f", "--", temporary]), purpose: "removing the new agent")
          throw CaptureFailure(host: name, step: step, "sudo mv failed: \(renamed.stderrText)")
        }
      } else {
        // `upload` itself writes a temporary name and renames it over `path`.
        _ = try ssh.upload(local.path, to: path, mode: 0o755)
      }
      let digest = try ssh.remoteSHA256(path)
      guard digest == local.sha256 else {
        throw CaptureFailure(
          host: name, step: step, "the uploaded agent's SHA-256 is \(digest), expected \(local.sha256)")
      }
    } catch let error as SSHError {
      throw CaptureFailure(host: name, step: step, error.message)
    } catch let error as CaptureFailure {
      throw error
    } catch {
      throw CaptureFailure(host: name, step: step, "\(error)")
    }
    note("agent at \(path) verified (SHA-256 \(local.sha256.prefix(16))...)")
  }

  /// Runs, in one exec: the SHA-256 of the host's agent binary, `df` of the first existing
  /// folder the agent writes to, and — only when the digest is `expectedSHA256` — `exec` of
  /// the agent. Data travels as positional arguments of a fixed `sh -c` script, never in it.
  /// Returns the digest (nil when the binary is missing), the df output, and the agent's
  /// stream when it was started.
  func startCheckedAgent(expectedSHA256: String) throws(CaptureFailure) -> (
    digest: String?, df: String, agent: CommandStream?
  ) {
    let step = "checking and starting the agent"
    let ssh = try session(step)
    // One line: some login shells (csh) refuse a newline inside quotes.
    let script =
      #"a=$1 e=$2 n=$3; shift 3; d=$(sha256sum -- "$a" 2>/dev/null); printf '%s\n' "$d"; echo smcpair-df; "#
      + #"found=0; while [ "$n" -gt 0 ]; do if [ $found = 0 ] && [ -e "$1" ]; then df -Pk -- "$1" 2>/dev/null; "#
      + #"found=1; fi; shift; n=$((n - 1)); done; echo smcpair-start; case "$d" in "$e "*) exec "$@" ;; esac"#
    let folders = agentFolders
    let command = RemoteCommand.join(
      ["sh", "-c", script, "smcpair-check", access.host.agentPath, expectedSHA256, String(folders.count)]
        + folders + access.agentArgv(["serve"]))
    let stream: CommandStream
    do {
      stream = try ssh.stream(command)
    } catch {
      throw CaptureFailure(host: name, step: step, error.message)
    }
    // The script prints a digest line and df's few lines. A host that answers every command
    // with endless output, or with a line now and then, is cut off by the same limits as any
    // short command (64 KiB, 30 s by default), not by the agent protocol's per-read timeout.
    let limits = ssh.options.commandLimits
    let overall = Date().addingTimeInterval(limits.seconds ?? 30)
    let cap = limits.stdout ?? 64 << 10
    var lines: [String] = []
    var received = 0
    do throws(SSHError) {
      while true {
        let remaining = overall.timeIntervalSinceNow
        guard remaining > 0 else {
          throw SSHError(
            .timeout, host: ssh.label,
            "the check script did not reach the agent's start within \(Int(limits.seconds ?? 30)) s (\(received) bytes, \(lines.count) lines so far). Is a ForceCommand or a login script printing on every command?"
          )
        }
        guard let line = try stream.readLine(timeout: remaining) else {
          if overall.timeIntervalSinceNow <= 0 { continue }
          break
        }
        if line == "smcpair-start" { break }
        received += line.utf8.count + 1
        guard received <= cap else {
          throw SSHError(
            .outputLimit, host: ssh.label,
            "the check script sent more than \(CommandLimits.describe(cap)) before the agent's start; the channel was closed. Is a ForceCommand or a login script printing on every command?"
          )
        }
        lines.append(line)
      }
    } catch {
      stream.abandon()
      throw CaptureFailure(host: name, step: step, error.message)
    }
    let (digest, df) = RemoteReplies.agentCheck(lines)
    guard let digest else {
      _ = try? stream.close()
      return (nil, df, nil)
    }
    guard digest == expectedSHA256 else {
      _ = try? stream.close()
      return (digest, df, nil)
    }
    return (digest, df, stream)
  }

  func startAgent() throws(CaptureFailure) {
    let ssh = try session("starting the agent")
    agent = try RemoteAgent(session: ssh, command: access.agentCommand(["serve"]), host: name)
  }

  /// The agent's state folder and its parents up to `/` (df reports the first that exists).
  var agentFolders: [String] {
    var candidates: [String] = []
    var folder = access.host.agentRoot ?? "/var/lib/smcpair/agent"
    while folder.count > 1 {
      candidates.append(folder)
      folder = parentFolder(of: folder)
    }
    return candidates + ["/"]
  }

  /// Below this, a capture would stop at once with a full disk: refuse in the preflight.
  static let minimumFreeMiB: Int64 = 64

  /// Available MiB from `df -Pk` output (the first line that parses).
  static func freeMiB(fromDF output: String) -> Int64? { RemoteReplies.freeMiB(fromDF: output) }

  // MARK: - capture

  /// The running agent; a step that needs one before it started fails naming the step.
  func runningAgent(_ step: String) throws(CaptureFailure) -> RemoteAgent {
    guard let agent else { throw CaptureFailure(host: name, step: step, "the agent is not running") }
    return agent
  }

  func prepare(_ plan: CapturePlan) throws(CaptureFailure) {
    if let tool {
      // e.g. tcpdump's -C rotates instead of stopping: refused rather than silently ignored.
      if let problem = tool.unsupported(plan) {
        throw CaptureFailure(host: name, step: "preparing \(tool.engine.rawValue)", problem)
      }
      toolPlan = plan
      note("prepared \(tool.folder): \(tool.argv(plan).joined(separator: " "))")
      return
    }
    let prepared = try runningAgent("agent 'prepare'").call(.prepare(plan))
    note(
      "prepared \(remoteSession): \(prepared.interfaces.joined(separator: ", ")); SMC dump: \(prepared.smcDump)"
    )
  }

  func start() throws(CaptureFailure) {
    if let tool, let plan = toolPlan {
      try startTool(tool, plan)
      return
    }
    let started = try runningAgent("agent 'start'").call(.start)
    startedNanoseconds = started.startedNanoseconds
    progress.state = .capturing
    note("capturing")
  }

  /// The agent's clock against ours: (remote − local offset, half the round trip), best of 5.
  func clockProbe() -> (offset: Double, halfWidth: Double)? {
    var best: (offset: Double, halfWidth: Double)?
    for _ in 0..<5 {
      let before = UTCStamp.nanoseconds()
      guard let remote = remoteClock() else { continue }
      let after = UTCStamp.nanoseconds()
      let half = Double(after - before) / 2
      let offset = Double(remote) - (Double(before) + half)
      if half < best?.halfWidth ?? .infinity { best = (offset, half) }
    }
    lastProbe = best
    return best
  }

  /// Refreshes `progress`; a broken agent or connection marks the side as ended early.
  func poll() {
    if tool != nil {
      pollTool()
      return
    }
    guard endedEarly == nil, failure == nil, let agent else { return }
    do {
      apply(try agent.call(.status, timeout: 10))
    } catch {
      endedEarly = error.message
      progress.state = .lost
      note("lost while capturing: \(error.message)")
      if error.connectionLost { dropConnection() }
    }
  }

  /// The connection is dead: release it without talking to the peer (a fresh one is made
  /// when the host is needed again).
  func dropConnection() {
    ssh?.abort()
    agent?.close()
    agent = nil
    ssh?.close()
    ssh = nil
  }

  func apply(_ status: StatusReply) {
    progress.state = SideState(status.state)
    progress.packets = status.packets
    progress.bytes = status.bytes
    progress.drops = Int64(clamping: status.drops)
    progress.interfaces = status.interfaces
    progress.stopReason = status.stopReason
    if let stopped = status.stoppedNanoseconds { stoppedNanoseconds = stopped }
    if let started = status.startedNanoseconds { startedNanoseconds = started }
  }

  /// Stops (if still capturing) and finalizes. When the agent is gone, the session is read
  /// from its folder through `smcpair-agent attach` on a new channel (or a new connection).
  func stopAndFinalize() throws(CaptureFailure) {
    if let tool {
      try stopTool(tool)
      return
    }
    if endedEarly == nil, let agent {
      do {
        let stopped = try agent.call(.stop)
        apply(stopped)
        let finalized = try agent.call(.finalize, timeout: 120)
        record(finalized)
        agent.close()
        self.agent = nil
        return
      } catch {
        endedEarly = error.message
        note("the agent did not finish cleanly: \(error.message); reading the session from its folder")
        if error.connectionLost { dropConnection() }
      }
    }
    try finalizeFromFolder()
  }

  /// `attach SESSION`: the running agent if it is still there, its folder otherwise.
  func finalizeFromFolder() throws(CaptureFailure) {
    agent = nil
    var attached: RemoteAgent
    do {
      attached = try RemoteAgent(
        session: try session("reconnecting"), command: access.agentCommand(["attach", remoteSession]),
        host: name)
    } catch {
      // The connection itself may be gone: one fresh one.
      dropConnection()
      attached = try RemoteAgent(
        session: try session("reconnecting"), command: access.agentCommand(["attach", remoteSession]),
        host: name)
    }
    if let stopped = try? attached.call(.stop) { apply(stopped) }
    let finalized = try attached.call(.finalize, timeout: 120)
    record(finalized)
    attached.close()
  }

  func record(_ finalized: FinalizeReply) {
    apply(finalized.status)
    remoteFiles = finalized.files.map { ($0.path, $0.size, $0.sha256) }
    progress.state = .finalized
    note("finalized: \(remoteFiles.map { "\($0.path) (\($0.size) bytes)" }.joined(separator: ", "))")
    note(
      "written per interface: "
        + progress.interfaces.map { "\($0.name) \($0.written) packets, \($0.bytes) bytes, \($0.drops) drops" }
        .joined(separator: "; "))
  }

  /// Downloads the finalized files into `folder` as `<role>.pcapng` (then `<role>-2.pcapng`
  /// ...), each checked against the SHA-256 the agent computed. A mismatch is pulled again once.
  func pull(into folder: String, progress report: TransferProgress? = nil) throws(CaptureFailure) {
    let ssh = try session("pulling")
    localFiles = []
    for (index, file) in remoteFiles.enumerated() {
      let local =
        "\(folder)/\(role.rawValue)\(index == 0 ? "" : "-\(index + 1)")" + Self.localExtension(file.path)
      var attempt = 0
      while true {
        attempt += 1
        do {
          // The agent's files are root's (0600, in root's folders): with become: sudo they
          // are read through 'sudo -n cat'; otherwise SFTP (pipelined, resumable).
          let started = Date()
          // A tool engine on a host without sha256sum has no digest: the copy is checked by
          // its size and a full read of its structure instead (`verifyStructure`).
          let digest = file.sha256.isEmpty ? nil : file.sha256
          let bytes =
            access.usesSudo
            ? try privilegedDownload(
              ssh, file.path, to: local, size: file.size, expectedSHA256: digest, progress: report)
            : try ssh.download(
              file.path, to: local, expectedSHA256: digest, hostDigest: digest != nil, progress: report
            ).bytes
          if digest == nil { try verifyStructure(local, size: file.size, remote: file.path) }
          let seconds = Date().timeIntervalSince(started)
          note(
            "pulled \(file.path) → \(local): \(bytes) bytes in \(String(format: "%.3f", seconds)) s (\(String(format: "%.1f", Double(bytes) / max(seconds, 1e-6) / 1_048_576)) MiB/s), \(digest == nil ? "size and structure verified (no sha256sum on the host)" : "SHA-256 verified")"
          )
          break
        } catch {
          if error.code == .checksum && attempt < 2 {
            note("SHA-256 mismatch on \(file.path); pulling it again")
            unlink(local + ".partial")
            continue
          }
          throw CaptureFailure(host: name, step: "pulling \(file.path)", error.message)
        }
      }
      chmod(local, 0o600)
      localFiles.append(local)
    }
  }

  /// `sudo -n cat FILE` into `local.partial`, hashed on the way, renamed when the digest
  /// matches (removed when it does not).
  func privilegedDownload(
    _ ssh: SSHSession, _ remote: String, to local: String, size: Int64, expectedSHA256: String?,
    progress: TransferProgress?
  ) throws(SSHError) -> Int64 {
    let partial = local + ".partial"
    let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw SSHError(
        .transfer, host: ssh.label, "cannot write \(partial): \(Errno.current)")
    }
    defer { Glibc.close(fd) }
    var hasher = SHA256()
    var total: Int64 = 0
    var writeFailed = false
    var errors: [UInt8] = []
    let status: Int32?
    do {
      // Streamed to the file: no cap beyond the file's size, no overall deadline (the
      // inactivity timeout still applies); stderr capped like any command's.
      (status, _) = try ssh.run(
        access.privileged(["cat", "--", remote]), purpose: "pulling \(remote) through sudo -n cat",
        limits: .streaming(stdout: Int(clamping: size)),
        onStdout: { chunk in
          chunk.withUnsafeBytes { raw in
            hasher.update(raw)
            if write(fd, raw.baseAddress, raw.count) != raw.count { writeFailed = true }
          }
          total += Int64(chunk.count)
          _ = progress?(total, total)
        }, onStderr: { errors += $0 })
    } catch {
      unlink(partial)
      throw error
    }
    guard status == 0, !writeFailed else {
      unlink(partial)
      throw SSHError(
        .transfer, host: ssh.label,
        writeFailed
          ? "cannot write \(partial)"
          : "sudo -n cat \(remote) failed: \(String(decoding: errors, as: UTF8.self))")
    }
    let digest = hasher.finalizeHex()
    try ssh.accept(
      partial, as: local, remote: remote, digest: digest, expected: expectedSHA256 ?? digest,
      expectedFrom: "the host said")
    return total
  }

  /// Pulled, verified and removed from the host by an earlier run of this session (resume).
  public private(set) var pulledBefore = false

  /// Marks the side as pulled by an earlier run: `remote` as the agent reported, `local` here.
  func restorePulled(remote: [(path: String, size: Int64, sha256: String)], local: [String]) {
    remoteFiles = remote
    localFiles = local
    remoteRetention = "removed"
    pulledBefore = true
    progress.state = .finalized
    note("pulled and verified by the earlier run; its host's copy was removed")
  }

  /// Deletes the agent's session folder on the host (`smcpair-agent remove`), only once every
  /// finalized file was pulled and verified, unless `force` (`smcpair sessions clean`).
  func removeRemoteSession(force: Bool = false) {
    guard force || (!remoteFiles.isEmpty && localFiles.count == remoteFiles.count) else {
      remoteRetention = "kept (not every file was pulled and verified)"
      return
    }
    if let tool {
      removeToolFolder(tool)
      return
    }
    do {
      let output = try run(access.agentCommand(["remove", remoteSession]), step: "removing the host's copy")
      if output.exitStatus == 0 {
        remoteRetention = "removed"
        note("removed the host's copy: \(output.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines))")
      } else {
        remoteRetention = "left: \(output.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))"
        note("could not remove the host's copy: \(output.stderrText)")
      }
    } catch {
      remoteRetention = "left: \(error.message)"
      note("could not remove the host's copy: \(error.message)")
    }
  }

  func close() {
    agent?.close()
    agent = nil
    ssh?.close()
    ssh = nil
  }
}
