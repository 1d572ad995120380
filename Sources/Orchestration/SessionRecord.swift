import AgentProtocol
import Alignment
import Foundation
import Inventory
import MergePipeline
import SSHTransport
import Support

/// `session.json` in a session folder: what was asked, what each host did, where the files
/// are. Rewritten (atomically) at every step, so that a coordinator that dies leaves enough
/// for `smcpair sessions resume`. Fields added after the first release are optional, so that
/// older session folders still load (schema in docs/formats.md).
public struct SessionRecord: Codable, Sendable, Equatable {
  public var id: String
  public var pair: String
  public var state: PairState
  /// ISO 8601, when the pair was set up.
  public var created: String
  /// UTC time of this write.
  public var updated: String
  public var smcpairVersion: String
  /// The command line, passwords redacted (`SecretRedaction`).
  public var command: [String]
  public var filter: String
  /// Absent in records written before the dump device had its own filter.
  public var dumpFilter: String?
  /// `--smc-type`, `--smc-mode`, `--data-snaplen`; absent in records written before them
  /// (`all`, `all`, whole records).
  public var smcType: String?
  public var smcMode: String?
  public var dataSnaplen: Int?
  public var inventory: InventorySnapshot
  public var stop: Stop
  public var stopReason: String?
  public var clockProbe: Probe?
  /// Per side that ran a workload.
  public var workload: [Side: WorkloadEntry]?
  public var alignment: AlignmentSummary?
  /// Findings by kind.
  public var findings: [String: Int]?
  public var mergeError: String?
  public var sides: Sides

  enum CodingKeys: String, CodingKey {
    case id, pair, state, created, updated
    case smcpairVersion = "smcpair_version"
    case command, filter
    case dumpFilter = "dump_filter"
    case smcType = "smc_type"
    case smcMode = "smc_mode"
    case dataSnaplen = "data_snaplen"
    case inventory, stop
    case stopReason = "stop_reason"
    case clockProbe = "clock_probe"
    case workload, alignment, findings
    case mergeError = "merge_error"
    case sides
  }

  /// Where the hosts came from: the inventory's path and its hosts as parsed.
  public struct InventorySnapshot: Codable, Sendable, Equatable {
    public var path: String
    /// The pair's hosts and their jump hosts as smcpair parsed them (`hostsSnapshot`).
    public var hosts: String?
    /// Records written before the parsed snapshot: the inventory's text (could be null).
    public var text: String?
  }

  /// The stop conditions handed to the agents.
  public struct Stop: Codable, Sendable, Equatable {
    public var durationSeconds: Double?
    public var packets: Int64?
    public var maxFileBytes: Int64?

    enum CodingKeys: String, CodingKey {
      case durationSeconds = "duration_s"
      case packets
      case maxFileBytes = "max_file_bytes"
    }
  }

  /// The coarse clock probe (server agent − client agent).
  public struct Probe: Codable, Sendable, Equatable {
    public var offsetNanoseconds: Double
    public var halfWidthNanoseconds: Double

    enum CodingKeys: String, CodingKey {
      case offsetNanoseconds = "offset_ns"
      case halfWidthNanoseconds = "half_width_ns"
    }
  }

  /// One side's workload command.
  public struct WorkloadEntry: Codable, Sendable, Equatable {
    public var command: String
    /// The log file's name in the session folder.
    public var log: String
    public var outcome: WorkloadOutcome
    @NullWhenAbsent public var seconds: Double?
    /// Its process group on the host, once known; absent in the first records.
    @NullWhenAbsent public var pid: Int32?
    /// `SMCPAIR_WORKLOAD` in its environment; absent in the first records.
    public var tag: String?
    public var finished: Bool?
  }

  /// The clock model of the merge, in short.
  public struct AlignmentSummary: Codable, Sendable, Equatable {
    public var verdict: AlignmentVerdict
    /// null: unbounded.
    @NullWhenAbsent public var offsetNanoseconds: Double?
    @NullWhenAbsent public var offsetLowerNanoseconds: Double?
    @NullWhenAbsent public var offsetUpperNanoseconds: Double?
    @NullWhenAbsent public var skewPPM: Double?
    /// Paired packets: in `capture --json`, not in session.json.
    public var pairs: Int?
    public var causalityViolations: Int

    enum CodingKeys: String, CodingKey {
      case verdict
      case offsetNanoseconds = "offset_ns"
      case offsetLowerNanoseconds = "offset_lower_ns"
      case offsetUpperNanoseconds = "offset_upper_ns"
      case skewPPM = "skew_ppm"
      case pairs
      case causalityViolations = "causality_violations"
    }

    public init(_ alignment: Alignment, withPairs: Bool = false) {
      let model = alignment.model
      verdict = alignment.verdict
      offsetNanoseconds = finiteOrNil(model.offsetNanoseconds)
      offsetLowerNanoseconds = finiteOrNil(model.offsetLower)
      offsetUpperNanoseconds = finiteOrNil(model.offsetUpper)
      skewPPM = finiteOrNil(model.skewPPM)
      pairs = withPairs ? alignment.pairCount : nil
      causalityViolations = alignment.causalityViolations
    }
  }

  /// Findings of a merge, counted by kind.
  public static func findingCounts(_ findings: [Finding]) -> [String: Int] {
    var counts: [String: Int] = [:]
    for finding in findings { counts[finding.kind.rawValue, default: 0] += 1 }
    return counts
  }

  /// Both sides, by role.
  public typealias Sides = PerSide<SideEntry>

  /// One host of the pair.
  public struct SideEntry: Codable, Sendable, Equatable {
    public var host: String
    public var address: String
    public var port: Int
    public var user: String
    /// `removed`, `kept (...)`, `left: <why>`; null while undecided (or nothing on the host).
    @NullWhenAbsent public var remoteCopy: String?
    @NullWhenAbsent public var dataAddress: String?
    public var agent: String
    @NullWhenAbsent public var agentRoot: String?
    public var become: String
    /// The agent's session name on the host.
    public var remoteSession: String
    public var interfaces: [String]
    /// The agent's session state (text, as the agent says it).
    public var state: String
    public var packets: Int64
    public var bytes: Int64
    public var drops: Int64
    public var remoteFiles: [RemoteFile]
    /// The pulled files' names in the session folder.
    public var files: [String]
    public var log: [String]
    public var preflight: PreflightEntry
    public var agentVersion: String?
    /// `agent`, `tcpdump` or `smcdump-ex` (absent in records written before engines: agent).
    public var engine: String?
    /// SMC dump devices the tool left on the host (smcdump-ex should delete its own).
    public var leftDevices: [String]?
    public var startedNanoseconds: Int64?
    public var stoppedNanoseconds: Int64?
    public var stopReason: String?
    public var endedEarly: String?
    public var failure: String?
    /// What `--smc-type`/`--smc-mode`/`--data-snaplen` kept and left out on the dump device,
    /// by the agent's last status; absent when every record was kept whole.
    public var dumpRecords: DumpRecordsEntry?

    enum CodingKeys: String, CodingKey {
      case host, address, port, user
      case remoteCopy = "remote_copy"
      case dataAddress = "data_address"
      case agent
      case agentRoot = "agent_root"
      case become
      case remoteSession = "remote_session"
      case interfaces, state, packets, bytes, drops
      case remoteFiles = "remote_files"
      case files, log, preflight
      case agentVersion = "agent_version"
      case engine
      case leftDevices = "left_devices"
      case startedNanoseconds = "started_ns"
      case stoppedNanoseconds = "stopped_ns"
      case stopReason = "stop_reason"
      case endedEarly = "ended_early"
      case failure
      case dumpRecords = "dump_records"
    }
  }

  /// The agent's `dump_records` counters (`DumpRecordCounts`), as recorded.
  public struct DumpRecordsEntry: Codable, Sendable, Equatable {
    public var cdc: UInt64
    public var data: UInt64
    public var cut: UInt64
    public var unclassified: UInt64
    public var leftOutData: UInt64
    public var leftOutCDC: UInt64
    public var leftOutMode: UInt64
    public var calibration: String

    enum CodingKeys: String, CodingKey {
      case cdc, data, cut, unclassified
      case leftOutData = "left_out_data"
      case leftOutCDC = "left_out_cdc"
      case leftOutMode = "left_out_mode"
      case calibration
    }

    public init(_ counts: DumpRecordCounts) {
      cdc = counts.cdc
      data = counts.data
      cut = counts.cut
      unclassified = counts.unclassified
      leftOutData = counts.leftOutData
      leftOutCDC = counts.leftOutCDC
      leftOutMode = counts.leftOutMode
      calibration = counts.calibration
    }
  }

  /// A capture file on the host, as its agent finalized it.
  public struct RemoteFile: Codable, Sendable, Equatable {
    public var path: String
    public var size: Int64
    public var sha256: String
  }

  /// What the preflight found on the host.
  public struct PreflightEntry: Codable, Sendable, Equatable {
    public var hostKey: String
    public var auth: String
    public var sudo: String
    public var agent: String
    public var smcDump: String
    public var freeDisk: String
    public var kernel: String
    /// The engine and why it was chosen.
    public var engine: String?

    enum CodingKeys: String, CodingKey {
      case engine
      case hostKey = "host_key"
      case auth, sudo, agent
      case smcDump = "smc_dump"
      case freeDisk = "free_disk"
      case kernel
    }
  }

  /// The record of `pair` as it is now.
  init(_ pair: PairCapture, run: CaptureRun) {
    id = pair.id
    self.pair = pair.name
    state = pair.state
    created = ISO8601DateFormatter().string(from: pair.created)
    updated = UTCStamp.now()
    smcpairVersion = run.options.version
    command = SecretRedaction.redact(arguments: run.options.commandLine)
    filter = pair.filter
    dumpFilter = pair.dumpFilter
    smcType = run.options.smcType.rawValue
    smcMode = run.options.smcMode.rawValue
    dataSnaplen = run.options.dataSnaplen
    inventory = InventorySnapshot(
      path: run.inventory.path,
      hosts: Self.hostsSnapshot(
        run.inventory, names: [pair.client.access.host.name, pair.server.access.host.name]))
    let conditions = run.options.stop
    stop = Stop(
      durationSeconds: conditions.durationSeconds, packets: conditions.packets,
      maxFileBytes: conditions.maxFileBytes)
    stopReason = pair.stopReason
    clockProbe = pair.probe.map {
      Probe(offsetNanoseconds: $0.offsetNanoseconds, halfWidthNanoseconds: $0.halfWidthNanoseconds)
    }
    var workloads = pair.recordedWorkloads
    for (role, workload) in pair.workloads {
      workloads[role] = WorkloadEntry(
        command: SecretRedaction.redact(workload.command),
        log: (workload.logPath as NSString).lastPathComponent,
        outcome: workload.outcome, seconds: workload.seconds, pid: workload.pid, tag: workload.tag,
        finished: workload.finished)
    }
    workload = workloads.isEmpty ? nil : workloads
    if let merge = pair.merge {
      alignment = AlignmentSummary(merge.alignment)
      findings = Self.findingCounts(merge.findings)
    }
    mergeError = pair.mergeError
    sides = Sides(
      client: SideEntry(pair.client, interfaces: pair.interfaces.client),
      server: SideEntry(pair.server, interfaces: pair.interfaces.server))
  }

  /// Writes session.json atomically; returns what went wrong, nil when it was written.
  static func write(_ pair: PairCapture, run: CaptureRun) -> String? {
    let path = "\(pair.folder)/session.json"
    guard let data = try? RecordCoding.encoder(pretty: true).encode(SessionRecord(pair, run: run)) else {
      return "cannot encode \(path)"
    }
    let temporary = path + ".tmp"
    guard
      FileManager.default.createFile(
        atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600])
    else { return "cannot write \(temporary) (disk full, or the folder is gone or read-only?)" }
    guard rename(temporary, path) == 0 else {
      return "cannot rename \(temporary) to session.json: \(Errno.current)"
    }
    return nil
  }

  /// The hosts `sessions resume` needs, as parsed (smcpair YAML, `InventoryWriter`): the
  /// pair's two hosts and the inventory hosts they jump through. Never the inventory's text:
  /// an Ansible inventory may hold `ansible_password`, become passwords or vault values, and
  /// the parsed hosts have no field for any secret.
  static func hostsSnapshot(_ inventory: Inventory, names: [String]) -> String {
    var wanted: [String] = []
    var queue = names
    while let name = queue.first {
      queue.removeFirst()
      guard !wanted.contains(name), let host = inventory.host(name) else { continue }
      wanted.append(name)
      if let jump = host.jump { queue.append(jump) }
    }
    let hosts = inventory.hosts.filter { wanted.contains($0.name) }
    return InventoryWriter.yaml(
      Inventory(path: inventory.path, hosts: hosts),
      header: "hosts of \(inventory.path) as smcpair parsed them (no secrets are kept)")
  }

  /// One line of `smcpair sessions list`.
  public struct Summary: Sendable {
    public var id: String
    public var pair: String
    public var state: String
    public var created: String
    public var folder: String
  }

  /// The session.json of `folder`.
  public static func read(_ folder: String) throws(RecordError) -> SessionRecord {
    try RecordCoding.read(SessionRecord.self, path: "\(folder)/session.json")
  }

  /// What `sessions list` shows of a record, each field read on its own: a record this
  /// smcpair cannot read whole is still listed ("?" for what it lacks).
  struct Heading: Decodable {
    var pair: String?
    var state: String?
    var created: String?

    init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      pair = try? container.decode(String.self, forKey: .pair)
      state = try? container.decode(String.self, forKey: .state)
      created = try? container.decode(String.self, forKey: .created)
    }

    enum CodingKeys: String, CodingKey { case pair, state, created }
  }

  /// Session folders under `out`, oldest first.
  public static func list(_ out: String) -> [Summary] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
    return names.sorted().compactMap { name in
      let folder = "\(out)/\(name)"
      guard let heading = try? RecordCoding.read(Heading.self, path: "\(folder)/session.json") else {
        return nil
      }
      return Summary(
        id: name, pair: heading.pair ?? "?", state: heading.state ?? "?", created: heading.created ?? "?",
        folder: folder)
    }
  }
}

extension SessionRecord.SideEntry {
  init(_ side: CaptureSide, interfaces: [String]) {
    let host = side.access.host
    self.host = host.name
    address = host.address
    port = host.port
    user = host.user
    remoteCopy = side.remoteRetention ?? (side.remoteFiles.isEmpty ? nil : "kept (not pulled)")
    dataAddress = host.dataAddress
    agent = host.agentPath
    agentRoot = host.agentRoot
    become = host.become.rawValue
    remoteSession = side.remoteSession
    self.interfaces = interfaces
    state = side.progress.state.rawValue
    packets = side.progress.packets
    bytes = side.progress.bytes
    drops = side.progress.drops
    remoteFiles = side.remoteFiles.map {
      SessionRecord.RemoteFile(path: $0.path, size: $0.size, sha256: $0.sha256)
    }
    files = side.localFiles.map { ($0 as NSString).lastPathComponent }
    log = side.log
    let p = side.preflight
    preflight = SessionRecord.PreflightEntry(
      hostKey: p.hostKey, auth: p.auth, sudo: p.sudo, agent: p.agent, smcDump: p.smcDump,
      freeDisk: p.freeDisk,
      kernel: p.kernel, engine: p.engine.isEmpty ? nil : p.engine)
    agentVersion = side.agentVersion
    engine = side.engine.rawValue
    leftDevices = side.leftDevices.isEmpty ? nil : side.leftDevices
    startedNanoseconds = side.startedNanoseconds
    stoppedNanoseconds = side.stoppedNanoseconds
    stopReason = side.progress.stopReason?.description
    endedEarly = side.endedEarly
    failure = side.failure?.description
    dumpRecords = side.progress.interfaces.lazy.compactMap(\.dumpRecords).first.map(
      SessionRecord.DumpRecordsEntry.init)
  }
}

extension CaptureRun {
  /// Rebuilds a run from a session folder whose coordinator went away: the hosts come from
  /// the inventory snapshot in session.json, the agents' session names too.
  public convenience init(
    resuming folder: String, ssh: SSHOptions, knownHostsOverride: String?, options: CaptureOptions,
    events: CaptureEvents
  ) throws(CaptureFailure) {
    func bad(_ what: String) -> CaptureFailure {
      CaptureFailure(host: "workstation", step: "reading \(folder)/session.json", what)
    }
    let record: SessionRecord
    do {
      record = try SessionRecord.read(folder)
    } catch {
      throw bad(
        "\(error.field.isEmpty ? error.problem : "field '\(error.field)': \(error.problem)"); is \(folder) a session folder? (smcpair sessions list)"
      )
    }
    let path = record.inventory.path
    var inventory: Inventory
    do {
      // "hosts": the parsed hosts (since the raw text, which could hold secrets, is no longer
      // kept); "text": records written before that.
      if let text = record.inventory.hosts ?? record.inventory.text {
        inventory = try InventoryParser.parse(
          text, file: path + " (snapshot in session.json)",
          baseDirectory: parentFolder(of: path))
      } else {
        inventory = try InventoryParser.load(path: path)
      }
    } catch {
      throw bad("its inventory snapshot does not parse: \(error)")
    }
    // The original file's path, recorded again as it was (not the snapshot's label).
    inventory.path = path
    for role in Side.allCases where inventory.host(record.sides[role].host) == nil {
      throw bad(
        "the \(role.rawValue) side's host '\(record.sides[role].host)' is not in its inventory snapshot")
    }
    let sides = record.sides
    // The record's choice of dump records, so that the rewritten session.json keeps it.
    var options = options
    options.smcType = record.smcType.flatMap(SMCRecordType.init(rawValue:)) ?? .all
    options.smcMode = record.smcMode.flatMap(SMCCaptureMode.init(rawValue:)) ?? .all
    options.dataSnaplen = record.dataSnaplen
    try self.init(
      inventory: inventory,
      pairs: [InventoryPair(name: record.pair, client: sides.client.host, server: sides.server.host)],
      options: options, ssh: ssh, knownHostsOverride: knownHostsOverride, events: events,
      resume: (folder, sides.client.remoteSession, sides.server.remoteSession))
    let pair = pairs[0]
    if let probe = record.clockProbe {
      pair.probe = ClockProbe(
        offsetNanoseconds: probe.offsetNanoseconds, halfWidthNanoseconds: probe.halfWidthNanoseconds)
    }
    if let date = ISO8601DateFormatter().date(from: record.created) {
      pair.created = date
    }
    // A side pulled, verified and removed from its host before the coordinator went away is
    // done: resume keeps its local files and does not ask its host again.
    for role in Side.allCases {
      let entry = sides[role]
      guard entry.remoteCopy == "removed", !entry.remoteFiles.isEmpty else { continue }
      let local = entry.remoteFiles.enumerated().map {
        "\(folder)/\(role.rawValue)\($0.offset == 0 ? "" : "-\($0.offset + 1)")"
          + CaptureSide.localExtension($0.element.path)
      }
      guard local.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) else { continue }
      pair.side(role).restorePulled(
        remote: entry.remoteFiles.map { ($0.path, $0.size, $0.sha256) }, local: local)
    }
    // A side captured by the host's own tool is found again by its folder.
    for role in Side.allCases {
      guard let text = sides[role].engine, let engine = CaptureEngine(rawValue: text), engine != .agent else {
        continue
      }
      pair.side(role).resumeTool(engine)
    }
    // Workloads the dead coordinator left running: ended by resume.
    pair.recordedWorkloads = record.workload ?? [:]
    for (role, entry) in pair.recordedWorkloads {
      guard entry.finished != true, let pid = entry.pid, let tag = entry.tag else { continue }
      pair.orphanWorkloads[role] = (pid, tag)
    }
  }

  /// Removes both hosts' copies of the session (`smcpair sessions clean`). Returns (host,
  /// outcome) per side; session.json is left as the capture wrote it.
  public func cleanRemote() -> [(String, String)] {
    var results: [(String, String)] = []
    for side in allSides {
      side.removeRemoteSession(force: true)
      side.close()
      results.append((side.name, side.remoteRetention ?? "?"))
    }
    return results
  }

  /// Reattaches to both agents of a resumed session, stops and finalizes them, pulls and merges.
  public func resume() -> Int32 {
    for side in allSides where !side.pulledBefore {
      side.endedEarly = nil
      side.note("resuming: reattaching to \(side.remoteSession)")
    }
    for pair in pairs {
      for (role, orphan) in pair.orphanWorkloads {
        let side = pair.side(role)
        guard let ssh = try? side.session("ending the workload left running") else { continue }
        if Workload.terminate(pid: orphan.pid, tag: orphan.tag, using: ssh) {
          side.note("ended the \(role.rawValue) workload left running (process group \(orphan.pid))")
        }
      }
    }
    for pair in pairs { _ = take(.resumed, pair) }
    return finish()
  }
}
