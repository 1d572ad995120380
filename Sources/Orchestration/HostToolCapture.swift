import AgentProtocol
import Foundation
import Inventory
import SSHTransport
import Support

/// A capture by a tool the host already has — its tcpdump, or smc-tools' `smcdump-ex` — for
/// hosts where the agent cannot or may not run. The tool runs detached from the SSH
/// connection (`setsid`, bounded by `timeout -s INT`), in a folder of its own on the host
/// (`capture.pcap`, `capture.log`, `pid`, `devices`), so a lost connection loses nothing
/// and `resume` finds it again. It is armed when the tool says `listening on`, stopped with
/// SIGINT by its recorded PID (so it flushes, and smcdump-ex turns the dump off and deletes
/// its device), hashed with `sha256sum` on the host (without it: checked by size and a full
/// read of the pulled copy), pulled like the agent's files and
/// removed with its folder.
struct HostToolCapture: Sendable {
  let engine: CaptureEngine
  let facts: HostFacts
  /// The capture's folder on the host.
  let folder: String
  let runsAsRoot: Bool

  var file: String { "\(folder)/capture.pcap" }

  /// The capture of `session` on the host `access` reaches, by `engine`.
  init(engine: CaptureEngine, facts: HostFacts, access: HostAccess, session: String) {
    self.init(
      engine: engine, facts: facts, folder: Self.folder(for: access.host, session: session),
      runsAsRoot: access.host.user == "root" || access.usesSudo)
  }

  init(engine: CaptureEngine, facts: HostFacts, folder: String, runsAsRoot: Bool) {
    self.engine = engine
    self.facts = facts
    self.folder = folder
    self.runsAsRoot = runsAsRoot
  }

  /// Why `folder` cannot hold a tool capture, or nil: its path travels inside smcdump-ex's
  /// `--param` string, which the tool splits at spaces, so only plain characters are allowed.
  static func folderProblem(_ folder: String) -> String? {
    let plain = folder.utf8.allSatisfy { byte in
      (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
        || [UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "/")].contains(byte)
    }
    return plain
      ? nil
      : "the tool engines' capture folder \(folder) (beside agent_root) may only use letters, digits, '.', '_', '-' and '/'; set agent_root to such a path"
  }

  /// `<agent_root's parent>/captures/<session>`, `/var/lib/smcpair/captures/<session>` by default.
  static func folder(for host: InventoryHost, session: String) -> String {
    let agentRoot = host.agentRoot ?? "/var/lib/smcpair/agent"
    let parent = parentFolder(of: agentRoot)
    return "\(parent.isEmpty || parent == "/" ? "" : parent)/captures/\(session)"
  }

  /// The tool's argument vector for `plan`, bounded by `timeout` (which passes SIGINT on).
  func argv(_ plan: CapturePlan) -> [String] {
    let duration = plan.stop.durationSeconds ?? CapturePlan.defaultMaxDuration
    var bound = [
      "timeout", "-k", String(Self.killAfter), "-s", "INT", String(format: "%.3f", max(duration, 0.001)),
    ]
    // -B in KiB: the same kernel buffer as the agent's, so a burst is not dropped sooner.
    var tcpdumpOptions = [
      "-n", "-U", "-s", String(plan.snaplen), "-B", String(max(plan.bufferBytes / 1024, 1024)),
    ]
    if facts.tcpdumpNanoseconds { tcpdumpOptions.append("--time-stamp-precision=nano") }
    if runsAsRoot { tcpdumpOptions += ["-Z", "root"] }
    if let packets = plan.stop.packets { tcpdumpOptions += ["-c", String(packets)] }
    switch engine {
    case .tcpdump:
      let interface = plan.interfaces.count == 1 ? plan.interfaces[0] : "any"
      bound += [facts.tcpdump ?? "tcpdump", "-i", interface] + tcpdumpOptions + ["-w", file]
      if !plan.filter.isEmpty { bound.append(plan.filter) }
    case .smcdumpEx:
      // smcdump-ex's documented command line: -m all is every interface (NIC handshake and
      // the dump device's records in one file), -m/-t are --smc-mode/--smc-type (same values),
      // --param passes tcpdump's options on.
      bound += [facts.smcdumpEx ?? "smcdump-ex", "-m", plan.smcMode.rawValue, "-t", plan.smcType.rawValue]
      if facts.dumpSupport == .anckLegacy { bound.append("--legacy") }
      bound += ["--param", (tcpdumpOptions + ["-w", file]).joined(separator: " ")]
      let filter = Self.combined(plan.filter, plan.dumpFilter ?? "")
      if !filter.isEmpty { bound += ["--filter", filter] }
    case .agent:
      break
    }
    return bound
  }

  /// Why `plan` asks for something this engine cannot do, or nil: tcpdump has no dump records
  /// to choose from (`--smc-type`, `--smc-mode`, `--data-snaplen`), smcdump-ex has no per-record
  /// snap length; refusing beats a capture that silently ignores the flag.
  func unsupported(_ plan: CapturePlan) -> String? {
    var flags: [String] = []
    if engine == .tcpdump && plan.smcType != .all { flags.append("--smc-type") }
    if engine == .tcpdump && plan.smcMode != .all { flags.append("--smc-mode") }
    if plan.dataSnaplen != nil { flags.append("--data-snaplen") }
    if plan.stop.maxFileBytes != nil { flags.append("--max-size") }
    guard !flags.isEmpty else { return nil }
    return
      "\(flags.joined(separator: ", ")) \(flags.count == 1 ? "is" : "are") not applied by the \(engine.rawValue) engine; drop \(flags.count == 1 ? "it" : "them"), or use the agent (engine: agent)"
  }

  /// One filter for NIC packets and dump records on `-i any`: either matches. An empty dump
  /// filter means every dump record (`DumpFilter`): dump records are UDP, so `udp` keeps them.
  static func combined(_ nic: String, _ dump: String) -> String {
    if nic.isEmpty { return "" }
    if dump.isEmpty { return "(\(nic)) or udp" }
    return nic == dump ? nic : "(\(nic)) or (\(dump))"
  }

  // MARK: - the host's side, as fixed scripts with data as arguments

  /// Shared by the scripts: `p` the recorded PID (timeout's), `ours=yes` only when that
  /// process's command line names this capture's file — a PID can be reused, and another
  /// process must never be signalled nor taken for the tool.
  static let whoScript =
    #"d=$1; f="$d/capture.pcap"; p=$(cat "$d/pid" 2>/dev/null); ours=no; "#
    + #"if [ -n "$p" ] && kill -0 "$p" 2>/dev/null && tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$f"; "#
    + #"then ours=yes; fi; "#

  /// Starts the tool detached in a new folder (never an existing one: nothing planted there is
  /// followed); waits up to 10 s for its `listening on` line; records the `smc-dummy*`
  /// devices that appeared meanwhile as the tool's own (`own`), to check at the stop.
  static let startScript =
    #"d=$1; shift; umask 077; mkdir -p -- "${d%/*}" && mkdir -m 700 -- "$d" || exit 90; "#
    + #"ls /sys/class/net 2>/dev/null | grep '^smc-dummy' > "$d/devices"; "#
    + #"echo "started_ns=$(date +%s%N)"; setsid "$@" </dev/null >"$d/capture.log" 2>&1 & p=$!; "#
    + #"echo "$p" > "$d/pid"; echo "pid=$p"; i=0; n=0; while [ $i -lt 100 ]; do "#
    + #"n=$(grep -c 'listening on' "$d/capture.log" 2>/dev/null); [ "${n:-0}" -ge 1 ] && break; "#
    + #"kill -0 "$p" 2>/dev/null || break; sleep 0.1; i=$((i + 1)); done; echo "listening=${n:-0}"; "#
    + #"for n in $(ls /sys/class/net 2>/dev/null | grep '^smc-dummy'); do "#
    + #"grep -qx -- "$n" "$d/devices" || echo "$n"; done > "$d/own"; "#
    + #"if kill -0 "$p" 2>/dev/null; then echo alive=yes; fi; echo smcpair-log; tail -c 2000 "$d/capture.log""#

  /// Whether the tool still runs, and how large its file is.
  static let pollScript =
    whoScript + #"if [ $ours = yes ]; then echo alive=yes; fi; "#
    + #"echo "size=$(stat -c %s "$f" 2>/dev/null)"; echo smcpair-log; tail -c 600 "$d/capture.log""#

  /// SIGINT to the tool (through `timeout`, which passes it on and kills the tool
  /// `killAfter` seconds later if it has not exited) only when it is ours; up to 20 s for it to
  /// exit; then the file's size, whether the host has sha256sum, the tool's own devices still
  /// present, and the log's end. The digest is taken by `hashScript`, on its own deadline.
  static let stopScript =
    whoScript + #"if [ $ours = yes ]; then kill -INT "$p"; echo signalled=yes; i=0; "#
    + #"while kill -0 "$p" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done; "#
    + #"if kill -0 "$p" 2>/dev/null; then echo alive=yes; fi; fi; "#
    + #"echo "stopped_ns=$(date +%s%N)"; echo "size=$(stat -c %s "$f" 2>/dev/null)"; "#
    + #"if command -v sha256sum >/dev/null 2>&1; then echo sha256sum=yes; else echo sha256sum=none; fi; "#
    + #"for n in $(cat "$d/own" 2>/dev/null); do [ -e "/sys/class/net/$n" ] && echo "left_device=$n"; done; "#
    + #"echo smcpair-log; tail -c 2000 "$d/capture.log""#

  /// The capture file's SHA-256 (may take a while for a large file: no overall deadline).
  static let hashScript = #"d=$1; sha256sum -- "$d/capture.pcap" | cut -c1-64 | sed 's/^/sha256=/'"#

  /// Removes the folder (only files this capture wrote, then the folder).
  static let removeScript =
    #"d=$1; rm -f -- "$d/capture.pcap" "$d/capture.log" "$d/pid" "$d/devices" "$d/own" && rmdir -- "$d""#

  /// Seconds after SIGINT (or the duration's end) until `timeout` kills a tool that has not
  /// exited; within the stop script's 20 s wait.
  static let killAfter = 15

  func command(_ script: String, _ arguments: [String], access: HostAccess) -> String {
    access.privileged(["sh", "-c", script, "smcpair-\(engine.rawValue)", folder] + arguments)
  }
}

/// What one of the scripts answered: `key=value` lines, then the tool's log after `smcpair-log`.
struct ToolReply: Sendable {
  var values: [String: String] = [:]
  /// Every value of keys that may repeat (`left_device`).
  var lists: [String: [String]] = [:]
  var log = ""

  init(_ output: String) {
    var inLog = false
    var logLines: [Substring] = []
    for line in output.split(separator: "\n", omittingEmptySubsequences: false) {
      if inLog {
        logLines.append(line)
      } else if line == "smcpair-log" {
        inLog = true
      } else if let equals = line.firstIndex(of: "=") {
        let key = String(line[..<equals])
        let value = printable(line[line.index(after: equals)...].prefix(300))
        values[key] = value
        if lists[key, default: []].count < 64 { lists[key, default: []].append(value) }
      }
    }
    log = logLines.suffix(64).map { printable($0.prefix(500)) }.joined(separator: "\n")
      .trimmingCharacters(in: .whitespacesAndNewlines)
  }

  subscript(_ key: String) -> String? { values[key].flatMap { $0.isEmpty ? nil : $0 } }

  /// tcpdump's closing statistics: captured, received by filter, dropped by kernel.
  var statistics: (captured: Int64, received: Int64, dropped: Int64)? {
    func count(_ suffix: String) -> Int64? {
      log.split(separator: "\n").lazy.compactMap { line -> Int64? in
        guard line.hasSuffix(suffix) else { return nil }
        return Int64(line.split(separator: " ").first ?? "")
      }.last
    }
    guard let captured = count(" packets captured") else { return nil }
    return (
      captured, count(" packets received by filter") ?? captured, count(" packets dropped by kernel") ?? 0
    )
  }

  /// SMC dump devices present after the stop that were not there before the start.
  var leftDevices: [String] { lists["left_device"] ?? [] }

  /// The log's last lines, for an error message.
  var logTail: String {
    let lines = log.split(separator: "\n").suffix(4).joined(separator: " | ")
    return lines.isEmpty ? "(the tool wrote nothing)" : lines
  }
}
