import AgentProtocol
import Alignment
import Foundation
import Inventory
import MergePipeline
import SMCWire
import SSHTransport
import Synchronization

/// What to capture and when to stop: `smcpair capture`'s options.
public struct CaptureOptions: Sendable {
  /// BPF for both sides of every pair (overrides the pairs' own filters); nil uses them.
  public var filter: String?
  /// Filter for the SMC dump device; nil derives it from the capture filter (`DumpFilter`).
  public var dumpFilter: String?
  public var durationSeconds: Double?
  public var packets: Int64?
  public var untilStopped = false
  public var maxFileBytes: Int64?
  /// Parent folder of the session folders.
  public var out = "smcpair-sessions"
  public var serverCommand: String?
  public var clientCommand: String?
  public var agent: LocalAgent
  public var formats: MergeFormats = .all
  /// The capture engine for every host (`--engine`); nil: each host's `engine:` setting.
  public var engine: CaptureEngineSetting?
  /// Keep the capture files on the hosts after a verified pull (default: removed).
  public var keepRemote = false
  /// Which SMC dump records to keep (`--smc-type`).
  public var smcType: SMCRecordType = .all
  /// The NICs and the dump device, or the dump device alone of one mode (`--smc-mode`).
  public var smcMode: SMCCaptureMode = .all
  /// Bytes kept of each data record after its dump header (`--data-snaplen`); nil: whole.
  public var dataSnaplen: Int?
  /// The command line, recorded in session.json.
  public var commandLine: [String] = []
  public var version = ""

  public init(agent: LocalAgent) { self.agent = agent }

  /// The stop conditions handed to every agent. Without a limit of its own, a capture
  /// stops after `CapturePlan.defaultMaxDuration` so that no agent captures forever.
  var stop: StopConditions {
    var stop = StopConditions(packets: packets, maxFileBytes: maxFileBytes)
    if let durationSeconds {
      stop.durationSeconds = durationSeconds
    } else if !untilStopped && packets == nil && serverCommand == nil && clientCommand == nil {
      stop.durationSeconds = CaptureOptions.defaultDuration
    } else {
      stop.durationSeconds = CapturePlan.defaultMaxDuration
    }
    return stop
  }

  public static let defaultDuration = 30.0
}

/// One client/server pair through a capture.
public final class PairCapture: @unchecked Sendable {
  public let name: String
  public let client: CaptureSide
  public let server: CaptureSide
  public let filter: String
  public let dumpFilter: String
  public let interfaces: PerSide<[String]>
  /// `OUT/<UTC time>-<pair>`.
  public let folder: String
  public var id: String { (folder as NSString).lastPathComponent }
  /// The pair's steps; `CaptureRun` tells it every event (`handle(_:)`).
  public private(set) var machine: PairStateMachine
  public var state: PairState { machine.state }
  /// An event the pair's state did not allow (a bug in the run's order), told and kept.
  public internal(set) var stateError: PairStateError?
  public internal(set) var stopReason: String?
  public internal(set) var probe: ClockProbe?
  public internal(set) var merge: MergeRun.Result?
  public internal(set) var mergeError: String?
  var workloads: [Side: Workload] = [:]
  /// Workloads a previous coordinator started and may have left running (resume): pid, tag.
  var orphanWorkloads: [Side: (pid: Int32, tag: String)] = [:]
  /// The workload entries of the session.json being resumed, written back as they were.
  var recordedWorkloads: [Side: SessionRecord.WorkloadEntry] = [:]
  /// session.json holds every started workload's pid.
  var workloadPIDsRecorded = false
  var workloadEndedAt: Date?
  var created = Date()

  public var sides: [CaptureSide] { [client, server] }

  /// The workloads that ran: (role, how it ended, its log file).
  public var workloadResults: [(role: Side, outcome: WorkloadOutcome, log: String)] {
    [Side.server, .client].compactMap { role in
      workloads[role].map { (role, $0.outcome, $0.logPath) }
    }
  }

  init(
    name: String, client: CaptureSide, server: CaptureSide, filter: String, dumpFilter: String,
    interfaces: PerSide<[String]>,
    folder: String
  ) {
    self.name = name
    self.client = client
    self.server = server
    self.filter = filter
    self.dumpFilter = dumpFilter
    self.interfaces = interfaces
    self.folder = folder
    self.machine = PairStateMachine(pair: name)
  }

  /// Both sides' captures are complete and merged.
  public var complete: Bool {
    merge != nil && sides.allSatisfy { $0.failure == nil && $0.endedEarly == nil && !$0.localFiles.isEmpty }
  }

  /// Something was captured and pulled, but not everything.
  public var partial: Bool { !complete && sides.contains { !$0.localFiles.isEmpty } }

  /// The side playing `role`.
  public func side(_ role: Side) -> CaptureSide { role == .client ? client : server }

  /// Tells the pair's state machine `event`; returns the action the run must take.
  func handle(_ event: PairEvent) throws(PairStateError) -> PairAction {
    do {
      return try machine.handle(event)
    } catch {
      stateError = stateError ?? error
      throw error
    }
  }
}

/// Messages for the user while a capture runs (the command decides how to show them).
public struct CaptureEvents: Sendable {
  public var line: @Sendable (String) -> Void
  /// Called about every second while capturing.
  public var progress: @Sendable ([PairCapture]) -> Void
  /// Pull progress: (side, bytes done, total).
  public var transfer: @Sendable (CaptureSide, Int64, Int64) -> Void

  public init(
    line: @escaping @Sendable (String) -> Void,
    progress: @escaping @Sendable ([PairCapture]) -> Void = { _ in },
    transfer: @escaping @Sendable (CaptureSide, Int64, Int64) -> Void = { _, _, _ in }
  ) {
    self.line = line
    self.progress = progress
    self.transfer = transfer
  }
}

/// A two-sided capture of one or more pairs: preflight, deploy, arm, barrier, workload,
/// stop, finalize, pull, verify, merge; session.json records every step.
public final class CaptureRun: @unchecked Sendable {
  public let pairs: [PairCapture]
  let options: CaptureOptions
  let inventory: Inventory
  let events: CaptureEvents
  /// When both sides of every pair were capturing ("capturing on both sides").
  public private(set) var armedAt: Date?
  public let startedAt = Date()

  /// `pairs`: (name, client, server, filter, interfaces) resolved from the inventory.
  public init(
    inventory: Inventory, pairs: [InventoryPair], options: CaptureOptions, ssh: SSHOptions,
    knownHostsOverride: String?, events: CaptureEvents,
    resume: (folder: String, client: String, server: String)? = nil
  ) throws(CaptureFailure) {
    self.inventory = inventory
    self.options = options
    self.events = events
    let stamp = UTCStamp.compact()
    var made: [PairCapture] = []
    for pair in pairs {
      guard let clientHost = inventory.host(pair.client), let serverHost = inventory.host(pair.server) else {
        throw CaptureFailure(
          host: "workstation", step: "reading the inventory",
          "pair '\(pair.name)' names a host that is not there")
      }
      var id = "\(stamp)-\(pair.name)"
      var suffix = 2
      while resume == nil && FileManager.default.fileExists(atPath: "\(options.out)/\(id)") {
        id = "\(stamp)-\(pair.name)-\(suffix)"
        suffix += 1
      }
      // Agent session names: at most 64 characters of [A-Za-z0-9._-], unique even when two
      // workstations capture the same hosts in the same second.
      let remote = String(id.prefix(48)) + "-" + String(UInt16.random(in: 0...UInt16.max), radix: 16)
      let client = CaptureSide(
        role: .client,
        access: HostAccess(clientHost, in: inventory, base: ssh, knownHostsOverride: knownHostsOverride),
        remoteSession: resume?.client ?? remote + "-client")
      let server = CaptureSide(
        role: .server,
        access: HostAccess(serverHost, in: inventory, base: ssh, knownHostsOverride: knownHostsOverride),
        remoteSession: resume?.server ?? remote + "-server")
      made.append(
        PairCapture(
          name: pair.name, client: client, server: server, filter: options.filter ?? pair.filter ?? "",
          dumpFilter: options.dumpFilter ?? DumpFilter.derive(options.filter ?? pair.filter ?? ""),
          interfaces: PerSide(
            client: pair.interfaces ?? clientHost.nics, server: pair.interfaces ?? serverHost.nics),
          folder: resume?.folder ?? "\(options.out)/\(id)"))
    }
    self.pairs = made
  }

  var allSides: [CaptureSide] { pairs.flatMap(\.sides) }

  /// Runs `step` on every side at once (one thread each); a failure is recorded on its side.
  func eachSide(
    _ sides: [CaptureSide], _ step: @escaping @Sendable (CaptureSide) throws(CaptureFailure) -> Void
  ) {
    eachSide(of: pairs, where: { side in sides.contains { $0 === side } }) { _, side throws(CaptureFailure) in
      try step(side)
    }
  }

  /// Runs `step` on the sides of `pairs` that `include` chooses, all at once (one thread
  /// each), with the side's pair; a failure is recorded on its side.
  func eachSide(
    of pairs: [PairCapture], where include: (CaptureSide) -> Bool = { _ in true },
    _ step: @escaping @Sendable (PairCapture, CaptureSide) throws(CaptureFailure) -> Void
  ) {
    let chosen = pairs.flatMap { pair in pair.sides.filter(include).map { (pair, $0) } }
    _ = ParallelHosts.map(chosen) { pair, side in
      do throws(CaptureFailure) {
        try step(pair, side)
      } catch {
        side.fail(error)
      }
      return 0
    }
  }

  /// Tells `pair` `event` and returns the action to take. An event its state does not
  /// allow is a bug in this run's order: told (with the pair's name), kept on the pair
  /// (the run then ends with a non-zero status), and the pair stays where it was (nil).
  func take(_ event: PairEvent, _ pair: PairCapture) -> PairAction? {
    do throws(PairStateError) {
      return try pair.handle(event)
    } catch {
      events.line("error: \(error)")
      return nil
    }
  }

  /// Runs the capture. `interrupts` says how many times the user pressed Ctrl-C.
  /// Returns the exit status: 0 complete, 1 a host failed before capturing, 2 partial.
  public func run(interrupts: @escaping @Sendable () -> Int) -> Int32 {
    for pair in pairs {
      do {
        try FileManager.default.createDirectory(
          atPath: pair.folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      } catch {
        events.line("cannot create the session folder \(pair.folder): \(error.localizedDescription)")
        return 1
      }
    }
    // 1. Preflight, deploy and prepare, every host in parallel. Each host prepares (opens
    //    its handles, compiles the filter, allocates the rings) as soon as its own preflight
    //    passed, while slower hosts are still being checked; nothing captures yet, and a
    //    prepared session is released when its agent's control connection closes.
    let agent = options.agent
    eachSide(of: pairs) { pair, side throws(CaptureFailure) in
      try side.prepareHost(
        localAgent: agent, smcDump: side.access.host.smcDump, engineSetting: self.options.engine)
      try side.prepare(
        CapturePlan(
          session: side.remoteSession,
          interfaces: pair.interfaces[side.role],
          filter: pair.filter, stop: self.options.stop, smcDump: side.access.host.smcDump,
          dumpFilter: pair.dumpFilter, smcType: self.options.smcType, smcMode: self.options.smcMode,
          dataSnaplen: self.options.dataSnaplen))
    }
    events.line(preflightTable())
    if allSides.contains(where: { $0.failure != nil }) {
      abandon("preflight failed")
      return 1
    }
    // 2. Start every side.
    let starting = pairs.filter { take(.preflightPassed, $0) == .startSides }
    eachSide(of: starting) { _, side throws(CaptureFailure) in try side.start() }
    if allSides.contains(where: { $0.failure != nil }) || starting.count < pairs.count {
      // One side could not start: stop and finalize the ones that did, leave nothing running.
      eachSide(allSides.filter { $0.failure == nil }) { side throws(CaptureFailure) in
        defer { side.close() }
        try side.stopAndFinalize()
      }
      abandon("a host could not start capturing")
      return 1
    }
    let armed = Date()
    armedAt = armed
    for pair in pairs {
      _ = take(.armed, pair)
      write(pair)
    }
    events.line(
      "capturing on both sides (\(pairs.count) pair\(pairs.count == 1 ? "" : "s"), armed in \(String(format: "%.2f", armed.timeIntervalSince(startedAt))) s); Ctrl-C stops"
    )
    // 3. Coarse clock probe (used only if no packet is seen on both sides).
    _ = ParallelHosts.map(allSides) { side in
      let probe = side.clockProbe()
      side.note(
        "clock probe: \(probe.map { "offset \(Int64($0.offset)) ns ± \(Int64($0.halfWidth)) ns" } ?? "failed")"
      )
      return 0
    }
    for pair in pairs {
      if let c = pair.client.lastProbe, let s = pair.server.lastProbe {
        pair.probe = ClockProbe(
          offsetNanoseconds: s.offset - c.offset, halfWidthNanoseconds: s.halfWidth + c.halfWidth)
      }
      write(pair)
    }
    // 4. Workloads: server first, then client.
    startWorkloads()
    // 5. Watch until every pair has stopped.
    watch(interrupts: interrupts)
    // 6. Stop, finalize, pull, merge.
    return finish()
  }

  func startWorkloads() {
    func start(_ role: Side, _ command: String?) {
      guard let command else { return }
      for pair in pairs {
        let workload = Workload(
          access: pair.side(role).access, command: substitute(command, pair),
          logPath: "\(pair.folder)/\(role.rawValue)-cmd.log", tag: "\(pair.id)-\(role.rawValue)")
        pair.workloads[role] = workload
        workload.start()
      }
    }
    start(.server, options.serverCommand)
    if options.serverCommand != nil && options.clientCommand != nil {
      // Give the servers a moment to listen before the clients connect.
      Thread.sleep(forTimeInterval: 0.5)
    }
    start(.client, options.clientCommand)
    if options.serverCommand != nil || options.clientCommand != nil {
      events.line("workload started\(options.serverCommand != nil ? " (server first)" : "")")
    }
  }

  /// `{client}` and `{server}` in a workload command become the hosts' traffic addresses
  /// (quoted): the inventory's `data_address` when set, else the SSH `address`.
  func substitute(_ command: String, _ pair: PairCapture) -> String {
    command.replacingOccurrences(
      of: "{client}", with: RemoteCommand.quote(pair.client.access.host.trafficAddress)
    )
    .replacingOccurrences(of: "{server}", with: RemoteCommand.quote(pair.server.access.host.trafficAddress))
  }

  func watch(interrupts: @escaping @Sendable () -> Int) {
    var lastProgress = Date.distantPast
    while pairs.contains(where: { $0.state == .capturing }) {
      if interrupts() > 0 {
        for pair in pairs where pair.state == .capturing {
          stopPair(pair, .stopRequested(reason: "stopped by Ctrl-C"))
        }
        events.line("stopping both sides (Ctrl-C again aborts and leaves the agents to their limits)")
        break
      }
      for pair in pairs where pair.state == .capturing {
        for side in pair.sides { side.poll() }
        if let lost = pair.sides.first(where: { $0.endedEarly != nil }), let early = lost.endedEarly {
          stopPair(
            pair,
            .sideStopped(reason: "\(lost.role.rawValue) \(lost.name) was lost while capturing: \(early)"))
          continue
        }
        if let stopped = pair.sides.first(where: { $0.progress.state != .capturing }) {
          stopPair(
            pair,
            .sideStopped(
              reason:
                "\(stopped.role.rawValue) stopped: \(stopped.progress.stopReason?.description ?? stopped.progress.state.rawValue)"
            ))
          continue
        }
        // A workload's pid goes into session.json as soon as it is known, so that a resume
        // after this coordinator dies can end it.
        if pair.workloads.values.contains(where: { $0.pid != nil }) && !pair.workloadPIDsRecorded {
          pair.workloadPIDsRecorded = !pair.workloads.values.contains { $0.pid == nil && !$0.finished }
          write(pair)
        }
        // The workload's end stops the pair (the client's, or the server's when alone).
        let deciding = pair.workloads[.client] ?? pair.workloads[.server]
        if let deciding, deciding.finished {
          let endedAt = pair.workloadEndedAt ?? Date()
          pair.workloadEndedAt = endedAt
          // A short grace so the last packets reach both captures.
          if Date().timeIntervalSince(endedAt) > 0.5 {
            stopPair(pair, .stopRequested(reason: "workload ended (\(deciding.outcome))"))
          }
        }
      }
      if Date().timeIntervalSince(lastProgress) >= 1 {
        events.progress(pairs)
        lastProgress = Date()
      }
      Thread.sleep(forTimeInterval: 0.2)
    }
  }

  /// Stops `pair` for `event` (a side stopped, Ctrl-C, the workload's end): the reason is
  /// recorded and told; `finish` stops and finalizes its sides.
  func stopPair(_ pair: PairCapture, _ event: PairEvent) {
    guard case .stopSides(let reason)? = take(event, pair) else { return }
    pair.stopReason = reason
    events.line("\(pair.name): \(reason)")
  }

  func finish() -> Int32 {
    // Workloads still running (a server waiting for more clients) are ended.
    for pair in pairs {
      for (role, workload) in pair.workloads where !workload.finished {
        workload.terminate(using: pair.side(role).ssh)
      }
    }
    eachSide(allSides.filter { !$0.pulledBefore }) { side throws(CaptureFailure) in try side.stopAndFinalize()
    }
    var pulling: [PairCapture] = []
    for pair in pairs {
      if take(.finalized, pair) == .pull { pulling.append(pair) }
      write(pair)
    }
    eachSide(of: pulling, where: { !$0.remoteFiles.isEmpty && !$0.pulledBefore }) {
      pair, side throws(CaptureFailure) in
      defer { side.close() }
      try side.pull(into: pair.folder) { done, total in
        self.events.transfer(side, done, total)
        return true
      }
      // Retention: the host's copy goes once every file is here and verified.
      if self.options.keepRemote {
        side.remoteRetention = "kept (--keep-remote)"
      } else {
        side.removeRemoteSession()
      }
    }
    for side in allSides { side.close() }
    var status: Int32 = 0
    for pair in pairs {
      if pair.state == .pulling { mergePair(pair) }
      if !pair.complete || pair.stateError != nil { status = 2 }
      write(pair)
    }
    return status
  }

  func mergePair(_ pair: PairCapture) {
    for workload in pair.workloads.values {
      // Workload output stays in its log; wait a little for it to be complete.
      let deadline = Date().addingTimeInterval(5)
      while !workload.finished && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    }
    guard let client = pair.client.localFiles.first, let server = pair.server.localFiles.first else {
      if case .recordNoMerge(let reason)? = take(.pullFailed(anything: pair.partial), pair) {
        pair.mergeError = reason
      }
      return
    }
    guard take(.pulled, pair) == .merge else { return }
    do {
      // No client addresses: the address smcpair logs in to is often not the one the traffic
      // uses (management network vs RoCE subnet), so the merge infers the client from the
      // traffic itself.
      pair.merge = try MergeRun.run(
        client: client, server: server, out: pair.folder, clientName: pair.client.name,
        serverName: pair.server.name, formats: options.formats, probe: pair.probe, allowSwapped: true,
        captureGaps: captureGaps(pair))
      _ = take(.merged(complete: pair.complete), pair)
      // Everything here derives from packet payloads: owner-only, like the captures.
      for name in (try? FileManager.default.contentsOfDirectory(atPath: pair.folder)) ?? [] {
        chmod("\(pair.folder)/\(name)", 0o600)
      }
    } catch {
      if case .recordMergeError(let text)? = take(.mergeFailed(error: "\(error)"), pair) {
        pair.mergeError = text
      }
    }
  }

  /// What report.md's "Capture gaps" says: which side's capture ends early, and from when
  /// the other side is alone; empty when both captures are whole (no section then).
  func captureGaps(_ pair: PairCapture) -> [String] {
    var lines: [String] = []
    for side in pair.sides {
      if let early = side.endedEarly {
        lines.append(
          "- the \(side.role.rawValue) (\(side.name)) capture ends early: \(early). Packets after its last one were seen by the other side only; they are not lost but unpaired."
        )
      }
      if let failure = side.failure { lines.append("- \(side.role.rawValue) (\(side.name)): \(failure)") }
    }
    return lines
  }

  /// Before anything captured: close every agent (a prepared session is released when its
  /// control connection closes) and record the failure.
  func abandon(_ why: String) {
    for side in allSides { side.close() }
    for pair in pairs {
      if case .closeAgents(let reason)? = take(.abandoned(why: why), pair) { pair.stopReason = reason }
      write(pair)
    }
  }

  func preflightTable() -> String {
    var rows = [["pair", "role", "host", "result", "auth", "sudo", "engine", "agent", "dump", "disk"]]
    for pair in pairs {
      for side in pair.sides {
        let p = side.preflight
        rows.append([
          pair.name, side.role.rawValue, "\(side.name) (\(side.access.target))",
          side.failure == nil ? "ok" : "FAILED", p.auth.isEmpty ? "-" : p.auth, p.sudo.isEmpty ? "-" : p.sudo,
          p.engine.isEmpty ? "-" : String(p.engine.prefix { $0 != " " }),
          p.agent.isEmpty ? "-" : "\(p.agent) \(p.agentVersion)", p.smcDump.isEmpty ? "-" : p.smcDump,
          p.freeDisk.isEmpty ? "-" : p.freeDisk,
        ])
      }
    }
    var widths = Array(repeating: 0, count: rows[0].count)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    var text = rows.map { row in
      row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(
        separator: "  "
      )
      .trimmingCharacters(in: .whitespaces)
    }.joined(separator: "\n")
    for side in allSides { if let failure = side.failure { text += "\n  \(failure)" } }
    return text
  }

  /// Records `pair` in its session.json; the first failure per pair is told, once.
  func write(_ pair: PairCapture) {
    guard let problem = SessionRecord.write(pair, run: self) else { return }
    let first = sessionWarnings.withLock { $0.insert(pair.id).inserted }
    if first {
      events.line(
        "warning: \(pair.name): \(problem); the capture goes on, but 'smcpair sessions' may not show its latest state"
      )
    }
  }

  /// Pairs whose session.json could not be written (warned once each).
  private let sessionWarnings = Mutex<Set<String>>([])
}
