import AgentProtocol
import Alignment
import ArgumentParser
import Foundation
import Inventory
import LiveCapture
import MergePipeline
import Orchestration
import SSHTransport
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// Ctrl-C count, read by the capture loop. The second Ctrl-C aborts at once.
nonisolated(unsafe) var interruptCount = 0

func installInterruptHandler() {
  signal(SIGINT) { _ in
    interruptCount += 1
    if interruptCount >= 2 {
      let text =
        "\nsmcpair: aborted; the agents stop at their own limits. 'smcpair sessions list' and 'smcpair sessions resume ID' recover the captures.\n"
      _ = text.withCString { write(2, $0, strlen($0)) }
      _exit(130)
    }
  }
}

struct CaptureCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "capture",
    abstract: "Capture both sides of client/server pairs at once over SSH, then pull and merge them.",
    discussion: """
      For each pair: both hosts are checked in parallel (host key, login, sudo -n, agent, SMC dump \
      support, free disk); the agent is deployed or upgraded when missing or different (SHA-256 \
      checked); both agents are armed with the same filter, and only then does smcpair say \
      "capturing on both sides". The workload runs (server first), the capture stops on \
      --duration, --packets, the workload's end or Ctrl-C (a second Ctrl-C aborts and leaves the \
      agents to their limits; 'smcpair sessions resume' recovers). Both files are pulled, checked \
      against the agents' SHA-256, and merged as 'smcpair merge' does.

      Session folder: OUT/<UTC time>-<pair>/ with client.pcapng, server.pcapng, alignment.json, \
      merged.pcapng, timeline.jsonl, timeline.html, report.md, session.json and the workload logs.

      In --server-cmd and --client-cmd, {server} and {client} stand for the hosts' traffic addresses \
      (quoted): the inventory's data_address when set (SMC over a RoCE subnet, SSH over the \
      management network), else the SSH address.

      Without --duration, --packets, --until-stopped or a workload, a capture lasts 30 s; every \
      capture stops after one hour at the latest.

      Capture engines (--engine, or engine: per host in the inventory): agent (smcpair's own, \
      deployed and checked by SHA-256; NIC and the SMC dump device in one pcapng), tcpdump (the \
      host's own, for hosts where the agent cannot or may not run: NIC only, pcap), smcdump-ex \
      (Alibaba Cloud Linux's smc-tools: turns the SMC dump on and off itself, -m all), auto \
      (default: the agent when the host's architecture matches it and deploy_agent is not false, \
      else smcdump-ex when present and the dump is wanted, else tcpdump). 'smcpair hosts check' \
      shows each host's facts and auto's choice. See docs/capture.md, "Capture engines".

      Volume (as smcdump-ex's -t and -m): --smc-type cdc keeps only the CDC records of the SMC \
      dump device (enough to pair and align both sides, a fraction of the bytes), raw only the \
      data records; --smc-mode smc captures the dump device without the NICs, smcr/smcd only \
      its SMC-R/SMC-D records; --data-snaplen N keeps the dump header and N bytes of each data \
      record. The dump header's type and mode values are not public: each agent measures them \
      from the first records (docs/capture.md, "Volume control"); a record it cannot classify \
      yet is kept whole, and the summary says how many records were left out and why.

      Exit status: 0 every pair captured and merged; 1 a host failed before capturing (nothing \
      left running); 2 partial result (a side ended early or could not be pulled; what exists is \
      in the session folder); 64 usage error.

      Examples:
        smcpair capture -i lab.yaml --pair pair1 --duration 10s
        smcpair capture -i hosts.yaml --client web1 --server db1 --filter 'tcp port 5432' \\
          --server-cmd 'iperf3 -s -1' --client-cmd 'iperf3 -c {server} -t 5'
        smcpair capture -i hosts.yaml --all-pairs --until-stopped --json
      """)

  @OptionGroup var connection: ConnectionOptions
  @Option(help: "A pair from the inventory or --pairs-file (repeatable).") var pair: [String] = []
  @Option(
    help: ArgumentHelp(
      "Pairs for an inventory without them (Ansible): YAML with a 'pairs:' mapping naming inventory hosts.",
      valueName: "file"))
  var pairsFile: String?
  @Flag(help: "Every pair of the inventory.") var allPairs = false
  @Option(help: "Client host (with --server): a pair not in the inventory.") var client: String?
  @Option(help: "Server host (with --client).") var server: String?
  @Option(help: "BPF filter for both sides (overrides the pairs' filters).") var filter: String?
  @Option(
    help: ArgumentHelp(
      "BPF for the SMC dump device (default: the filter with 'tcp' read as 'udp', since dump records are UDP frames with the connection's ports; '' captures every record).",
      valueName: "bpf"))
  var dumpFilter: String?
  @Option(
    help: ArgumentHelp(
      "SMC dump records to keep, as smcdump-ex's -t: 'all' (data and CDC records), 'raw' (data records only: the bytes the application moved), 'cdc' (CDC records only: the control messages with the cursors, enough to pair and align both sides).",
      valueName: "all|raw|cdc"))
  var smcType = "all"
  @Option(
    help: ArgumentHelp(
      "What to capture, as smcdump-ex's -m: 'all' (the NICs — handshake, fallbacks — and the SMC dump device), 'smc' (the dump device only, SMC-R and SMC-D records), 'smcr' or 'smcd' (the dump device only, records of that mode only).",
      valueName: "all|smc|smcr|smcd"))
  var smcMode = "all"
  @Option(
    help: ArgumentHelp(
      "Keep the dump header and N bytes of each SMC data record (the file keeps each record's original length, as tcpdump -s does); CDC records are always whole and NIC packets are not cut.",
      valueName: "N"))
  var dataSnaplen: Int?
  @Option(help: "Stop after this long: 30s, 5m, 1h, 500ms.") var duration: String?
  @Option(help: "Stop when a side has captured this many packets.") var packets: Int64?
  @Flag(help: "Capture until Ctrl-C (or the one-hour limit).") var untilStopped = false
  @Option(help: "Stop when a side's file reaches this size: 64M, 1G.") var maxSize: String?
  @Option(help: "Folder for the session folders.") var out = "smcpair-sessions"
  @Option(help: "Workload command on the server (a shell command line; runs first).") var serverCmd: String?
  @Option(help: "Workload command on the client (its end stops the capture).") var clientCmd: String?
  @Option(
    help: ArgumentHelp(
      "Capture engine on every host: auto, agent, tcpdump or smcdump-ex (default: each host's engine: setting, auto).",
      valueName: "engine"))
  var engine: String?
  @Option(help: "The agent binary to deploy (default: smcpair-agent next to smcpair).") var agentBinary:
    String?
  @Option(help: "Merge outputs: any of pcapng,jsonl,html,report (alignment.json always).")
  var formats = "pcapng,jsonl,html,report"
  @Flag(
    help:
      "Keep the capture files on the hosts after the pull (default: removed once pulled and SHA-256 verified; 'smcpair sessions clean' removes kept ones)."
  )
  var keepRemote = false
  @Flag(help: "One JSON summary on standard output; progress goes to standard error.") var json = false
  @Flag(help: "Only errors and the final summary.") var quiet = false

  func validate() throws {
    guard connection.inventory != nil else { throw ValidationError("pass the inventory with -i INVENTORY") }
    let selections = [!pair.isEmpty, allPairs, client != nil || server != nil].filter { $0 }.count
    guard selections == 1 else {
      throw ValidationError("choose the pairs with one of --pair NAME, --all-pairs, or --client H --server H")
    }
    if (client == nil) != (server == nil) { throw ValidationError("--client and --server go together") }
    if let engine, CaptureEngineSetting(rawValue: engine) == nil {
      throw ValidationError(
        "--engine '\(engine)' is not an engine; choose one of \(CaptureEngineSetting.choices)")
    }
    if let client, client == server {
      throw ValidationError("--client and --server must be two different hosts")
    }
    if Set(pair).count != pair.count { throw ValidationError("a --pair is named twice") }
    let stops = [duration != nil, packets != nil, untilStopped].filter { $0 }.count
    guard stops <= 1 else { throw ValidationError("choose one of --duration, --packets, --until-stopped") }
    if let duration, Quantity.seconds(duration) == nil {
      throw ValidationError("--duration '\(duration)' is not a duration; write e.g. 30s, 5m, 1h, 500ms")
    }
    if let packets, packets <= 0 { throw ValidationError("--packets must be positive") }
    try _ = VolumeOptions(smcType: smcType, smcMode: smcMode, dataSnaplen: dataSnaplen)
    if let maxSize, (Quantity.bytes(maxSize) ?? 0) < 4096 {
      throw ValidationError("--max-size '\(maxSize)' is not a size of at least 4K; write e.g. 64M or 1G")
    }
    do {
      _ = try MergeFormats(parsing: formats)
    } catch {
      throw ValidationError(error.description)
    }
    if let filter, let problem = FilterCheck.problem(filter) {
      throw ValidationError("the filter '\(filter)' does not compile: \(problem)")
    }
    if let dumpFilter, let problem = FilterCheck.problem(dumpFilter) {
      throw ValidationError("the dump filter '\(dumpFilter)' does not compile: \(problem)")
    }
  }

  func run() throws {
    guard var inventory = try connection.loadInventory(command: "capture") else { throw ExitCode(64) }
    if let pairsFile {
      do {
        for extra in try InventoryParser.loadPairs(path: pairsFile, for: inventory) {
          if let clash = inventory.pair(extra.name) {
            throw ValidationError(
              "\(extra.location): pair '\(extra.name)' is already defined at \(clash.location); rename one")
          }
          inventory.pairs.append(extra)
        }
      } catch let error as InventoryError {
        throw ConnectionOptions.report(error, command: "capture")
      }
    }
    let pairs = try selectedPairs(inventory)
    // Every filter compiles here first: a bad one never reaches a host.
    for pair in pairs where filter == nil {
      if let own = pair.filter, let problem = FilterCheck.problem(own) {
        writeStandardError(
          "smcpair capture: \(pair.location): pair '\(pair.name)': the filter '\(own)' does not compile: \(problem)\n"
        )
        throw ExitCode(64)
      }
    }
    var options: CaptureOptions
    do {
      options = CaptureOptions(agent: try LocalAgent(path: agentBinary ?? siblingExecutable("smcpair-agent")))
    } catch {
      writeStandardError("smcpair capture: \(error.message)\n")
      throw ExitCode(1)
    }
    options.filter = filter
    options.dumpFilter = dumpFilter
    if dumpFilter == nil {
      for chosen in Set(pairs.map { filter ?? $0.filter ?? "" }) {
        let derived = DumpFilter.derive(chosen)
        if FilterCheck.problem(derived) != nil {
          // Should not happen (the capture filter compiled); capture every dump record then.
          options.dumpFilter = ""
        }
      }
    }
    let volume = try VolumeOptions(smcType: smcType, smcMode: smcMode, dataSnaplen: dataSnaplen)
    options.smcType = volume.smcType
    options.smcMode = volume.smcMode
    options.dataSnaplen = volume.dataSnaplen
    options.durationSeconds = duration.flatMap(Quantity.seconds)
    options.packets = packets
    options.untilStopped = untilStopped
    options.keepRemote = keepRemote
    options.engine = engine.flatMap(CaptureEngineSetting.init(rawValue:))
    options.maxFileBytes = maxSize.flatMap(Quantity.bytes)
    options.out = out
    options.serverCommand = serverCmd
    options.clientCommand = clientCmd
    options.formats = try MergeFormats(parsing: formats)
    options.commandLine = CommandLine.arguments
    options.version = SMCPair.version
    let display = CaptureDisplay(json: json, quiet: quiet)
    let run: CaptureRun
    do {
      run = try CaptureRun(
        inventory: inventory, pairs: pairs, options: options, ssh: connection.baseOptions(),
        knownHostsOverride: connection.knownHosts, events: display.events)
    } catch {
      writeStandardError("smcpair capture: \(error.description)\n")
      throw ExitCode(1)
    }
    installInterruptHandler()
    let status = run.run { interruptCount }
    display.summary(run, status: status)
    if status != 0 { throw ExitCode(status) }
  }

  func selectedPairs(_ inventory: Inventory) throws -> [InventoryPair] {
    if allPairs {
      guard !inventory.pairs.isEmpty else {
        throw ValidationError(
          "\(inventory.path) has no pairs; add a 'pairs:' section or use --client/--server")
      }
      return inventory.pairs
    }
    if let client, let server {
      for name in [client, server] where inventory.host(name) == nil {
        throw ValidationError(
          "'\(name)' is not a host of \(inventory.path); hosts: \(inventory.hosts.map(\.name).joined(separator: ", "))"
        )
      }
      return [InventoryPair(name: "\(client)-\(server)", client: client, server: server)]
    }
    return try pair.map { name in
      guard let found = inventory.pair(name) else {
        throw ValidationError(
          "'\(name)' is not a pair of \(inventory.path); pairs: \(inventory.pairs.map(\.name).joined(separator: ", "))"
        )
      }
      return found
    }
  }
}

/// `--smc-type`, `--smc-mode` and `--data-snaplen`, checked: an unknown value names the flag
/// and the values it takes.
struct VolumeOptions: Equatable {
  var smcType: SMCRecordType
  var smcMode: SMCCaptureMode
  var dataSnaplen: Int?

  init(smcType: String, smcMode: String, dataSnaplen: Int?) throws(ValidationError) {
    guard let type = SMCRecordType(rawValue: smcType) else {
      throw ValidationError(
        "--smc-type '\(smcType)' is not one of \(SMCRecordType.allCases.map(\.rawValue).joined(separator: ", ")) (data and CDC records, data only, CDC only)"
      )
    }
    guard let mode = SMCCaptureMode(rawValue: smcMode) else {
      throw ValidationError(
        "--smc-mode '\(smcMode)' is not one of \(SMCCaptureMode.allCases.map(\.rawValue).joined(separator: ", ")) (NICs and dump device, dump device only, only its SMC-R or SMC-D records)"
      )
    }
    if let dataSnaplen, !(0...CapturePlan.maxDataSnaplen).contains(dataSnaplen) {
      throw ValidationError(
        "--data-snaplen \(dataSnaplen) is out of range: write 0...\(CapturePlan.maxDataSnaplen) (bytes kept of each data record after its dump header)"
      )
    }
    if type == .cdc && dataSnaplen != nil {
      throw ValidationError(
        "--data-snaplen cuts data records, and --smc-type cdc keeps none; drop one of them")
    }
    self.smcType = type
    self.smcMode = mode
    self.dataSnaplen = dataSnaplen
  }
}

/// Durations and sizes on the command line.
enum Quantity {
  static func seconds(_ text: String) -> Double? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
      guard let value = Double(text.dropLast(suffix.count)), value > 0, value.isFinite else { return nil }
      return value * factor
    }
    guard let value = Double(text), value > 0, value.isFinite else { return nil }
    return value
  }

  static func bytes(_ text: String) -> Int64? {
    let units: [(String, Double)] = [
      ("K", 1024), ("M", 1_048_576), ("G", 1_073_741_824), ("T", 1_099_511_627_776),
    ]
    let upper = text.uppercased().replacingOccurrences(of: "IB", with: "").replacingOccurrences(
      of: "B", with: "")
    for (suffix, factor) in units where upper.hasSuffix(suffix) {
      guard let value = Double(upper.dropLast()), value > 0 else { return nil }
      return Int64(value * factor)
    }
    return Int64(upper)
  }
}

/// How a capture shows itself: a live line on a terminal, plain lines otherwise, nothing
/// but the summary with --quiet, a JSON summary with --json.
final class CaptureDisplay: Sendable {
  let json: Bool
  let quiet: Bool
  let terminal: Bool

  init(json: Bool, quiet: Bool) {
    self.json = json
    self.quiet = quiet
    terminal = isatty(json ? 2 : 1) == 1
  }

  func say(_ text: String) {
    if json {
      writeStandardError(text + "\n")
    } else {
      print(text)
      fflush(nil)
    }
  }

  var events: CaptureEvents {
    let quiet = quiet
    let terminal = terminal
    nonisolated(unsafe) var lastPlain = Date.distantPast
    return CaptureEvents(
      line: { text in
        if !quiet {
          if terminal { self.say("\r\u{1B}[K" + text) } else { self.say(text) }
        }
      },
      progress: { pairs in
        guard !quiet else { return }
        let text = pairs.flatMap(\.sides).map {
          "\($0.name) \($0.progress.packets) pkts \(Self.size($0.progress.bytes)) \($0.progress.drops) drops"
        }.joined(separator: " | ")
        if terminal {
          let line = "\r\u{1B}[K" + String(text.prefix(200))
          if self.json { writeStandardError(line) } else { print(line, terminator: ""); fflush(nil) }
        } else if Date().timeIntervalSince(lastPlain) >= 5 {
          lastPlain = Date()
          self.say(text)
        }
      },
      transfer: { side, done, total in
        guard !quiet, terminal, total > 0 else { return }
        let line =
          "\r\u{1B}[Kpulling \(side.role.rawValue) \(side.name): \(Self.size(done)) of \(Self.size(total))"
        if self.json { writeStandardError(line) } else { print(line, terminator: ""); fflush(nil) }
      })
  }

  static func size(_ bytes: Int64) -> String {
    if bytes >= 1 << 30 { return String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) }
    if bytes >= 1 << 20 { return String(format: "%.1f MiB", Double(bytes) / Double(1 << 20)) }
    if bytes >= 1 << 10 { return String(format: "%.1f KiB", Double(bytes) / 1024) }
    return "\(bytes) B"
  }

  /// "h1: eth0 1.2 MiB, smc-dummy0 3.4 MiB": what a side wrote per interface, by its last
  /// status; nil before the agent told any.
  static func bytesPerInterface(host: String, _ interfaces: [(name: String, bytes: UInt64)]) -> String? {
    guard !interfaces.isEmpty else { return nil }
    return "\(host): "
      + interfaces.map { "\($0.name) \(size(Int64(clamping: $0.bytes)))" }.joined(separator: ", ")
  }

  /// "smc-dummy0: 120 CDC, 80 data records (80 cut to 64 bytes); left out: 75 data records
  /// by --smc-type cdc; ..." — what the agent's choice of dump records did.
  static func dumpRecordsLine(_ interface: String, _ r: DumpRecordCounts, _ volume: CaptureRun.Volume)
    -> String
  {
    var kept = "\(r.cdc) CDC, \(r.data) data records"
    if r.cut > 0, let n = volume.dataSnaplen { kept += " (\(r.cut) cut to \(n) bytes by --data-snaplen)" }
    var parts = ["\(interface): \(kept)"]
    if r.unclassified > 0 { parts.append("\(r.unclassified) kept whole, not classified yet") }
    var left: [String] = []
    if r.leftOutData > 0 {
      left.append("\(r.leftOutData) data records left out by --smc-type \(volume.smcType.rawValue)")
    }
    if r.leftOutCDC > 0 {
      left.append("\(r.leftOutCDC) CDC records left out by --smc-type \(volume.smcType.rawValue)")
    }
    if r.leftOutMode > 0 {
      left.append(
        "\(r.leftOutMode) records of the other SMC mode left out by --smc-mode \(volume.smcMode.rawValue)")
    }
    parts.append(left.isEmpty ? "nothing left out" : left.joined(separator: ", "))
    return parts.joined(separator: "; ") + " [\(r.calibration)]"
  }

  func summary(_ run: CaptureRun, status: Int32) {
    if terminal && !quiet { say("") }
    if json {
      print(RecordCoding.text(CaptureSummary(run, status: status)))
      return
    }
    for pair in run.pairs {
      print("pair \(pair.name): \(pair.state) — \(pair.folder)")
      if let reason = pair.stopReason { print("  stopped: \(reason)") }
      for side in pair.sides {
        var line =
          "  \(side.role.rawValue) \(side.name): \(side.progress.packets) packets, \(side.progress.drops) drops"
        if let file = side.localFiles.first { line += ", \(file)" }
        if side.engine != .agent { line += " (captured by \(side.engine.rawValue))" }
        if let early = side.endedEarly { line += " — ENDED EARLY: \(early)" }
        if let failure = side.failure { line += " — FAILED: \(failure.step): \(failure.message)" }
        print(line)
        if !side.leftDevices.isEmpty {
          print(
            "    WARNING: \(side.engine.rawValue) left \(side.leftDevices.joined(separator: ", ")) on \(side.name); delete with 'ip link del NAME' after checking nothing else uses it"
          )
        }
        if let written = Self.bytesPerInterface(
          host: side.name, side.progress.interfaces.map { ($0.name, $0.bytes) })
        {
          print("    " + written)
        }
        for interface in side.progress.interfaces {
          guard let records = interface.dumpRecords else { continue }
          print("    " + Self.dumpRecordsLine(interface.name, records, run.volume))
        }
      }
      for workload in pair.workloadResults where !workload.outcome.succeeded {
        print("  \(workload.role.rawValue) workload: \(workload.outcome) (output in \(workload.log))")
      }
      if let merge = pair.merge {
        let a = merge.alignment
        let m = a.model
        func us(_ ns: Double) -> String { ns.isFinite ? String(format: "%+.1f us", ns / 1000) : "unbounded" }
        print(
          "  clock: \(a.verdict.rawValue), server = client \(String(format: "%+.0f", m.offsetNanoseconds)) ns (bounds \(us(m.offsetLower - m.offsetNanoseconds)) .. \(us(m.offsetUpper - m.offsetNanoseconds))), skew \(String(format: "%+.3f", m.skewPPM)) ppm, \(a.pairCount) pairs, \(a.causalityViolations) causality violations"
        )
        let counts = SessionRecord.findingCounts(merge.findings)
        print(
          "  findings: \(counts.isEmpty ? "none" : counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))"
        )
        if FileManager.default.fileExists(atPath: pair.folder + "/timeline.html") {
          print("  timeline: \(pair.folder)/timeline.html")
        }
      } else if let error = pair.mergeError {
        print("  not merged: \(error)")
      }
    }
  }
}

/// `capture --json` and `sessions resume --json`: one object on standard output at the end.
struct CaptureSummary: Encodable {
  var exitStatus: Int32
  var armedSeconds: Double?
  var pairs: [Pair]

  enum CodingKeys: String, CodingKey {
    case exitStatus = "exit_status"
    case armedSeconds = "armed_seconds"
    case pairs
  }

  init(_ run: CaptureRun, status: Int32) {
    exitStatus = status
    armedSeconds = run.armedAt.map { $0.timeIntervalSince(run.startedAt) }
    pairs = run.pairs.map(Pair.init)
  }

  /// One pair: its state, folder, each side's counts, workloads, the merge in short.
  struct Pair: Encodable {
    var pair: String
    var state: PairState
    var folder: String
    var id: String
    var stopReason: String?
    var sides: [Side: SideSummary]
    var workloads: [Side: WorkloadSummary]?
    var alignment: SessionRecord.AlignmentSummary?
    var findings: [String: Int]?

    enum CodingKeys: String, CodingKey {
      case pair, state, folder, id
      case stopReason = "stop_reason"
      case sides, workloads, alignment, findings
    }

    init(_ pair: PairCapture) {
      self.pair = pair.name
      state = pair.state
      folder = pair.folder
      id = pair.id
      stopReason = pair.stopReason
      var sides: [Side: SideSummary] = [:]
      for side in pair.sides {
        sides[side.role] = SideSummary(
          host: side.name, engine: side.engine.rawValue, leftDevices: side.leftDevices,
          packets: side.progress.packets, bytes: side.progress.bytes,
          interfaces: side.progress.interfaces.map { InterfaceBytes(name: $0.name, bytes: $0.bytes) },
          drops: side.progress.drops, files: side.localFiles, endedEarly: side.endedEarly,
          error: side.failure?.description,
          dumpRecords: side.progress.interfaces.lazy.compactMap(\.dumpRecords).first.map(
            SessionRecord.DumpRecordsEntry.init))
      }
      self.sides = sides
      var workloads: [Side: WorkloadSummary] = [:]
      for workload in pair.workloadResults {
        workloads[workload.role] = WorkloadSummary(outcome: workload.outcome, log: workload.log)
      }
      self.workloads = workloads.isEmpty ? nil : workloads
      if let merge = pair.merge {
        alignment = SessionRecord.AlignmentSummary(merge.alignment, withPairs: true)
        findings = SessionRecord.findingCounts(merge.findings)
      }
    }
  }

  struct SideSummary: Encodable {
    var host: String
    /// `agent`, `tcpdump` or `smcdump-ex`.
    var engine: String
    /// SMC dump devices the engine left on the host.
    var leftDevices: [String]
    var packets: Int64
    var bytes: Int64
    /// Bytes written per capture interface, by the agent's last status.
    var interfaces: [InterfaceBytes]
    var drops: Int64
    /// The pulled files' paths.
    var files: [String]
    var endedEarly: String?
    var error: String?
    /// What --smc-type/--smc-mode/--data-snaplen kept and left out on the dump device.
    var dumpRecords: SessionRecord.DumpRecordsEntry?

    enum CodingKeys: String, CodingKey {
      case host, engine
      case leftDevices = "left_devices"
      case packets, bytes, interfaces, drops, files
      case endedEarly = "ended_early"
      case error
      case dumpRecords = "dump_records"
    }
  }

  struct InterfaceBytes: Encodable {
    var name: String
    var bytes: UInt64
  }

  struct WorkloadSummary: Encodable {
    var outcome: WorkloadOutcome
    var log: String
  }
}
