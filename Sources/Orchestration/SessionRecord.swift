import AgentProtocol
import Alignment
import Foundation
import Inventory
import SSHTransport
import Timeline

/// `session.json` in a session folder: what was asked, what each host did, where the files
/// are. Rewritten (atomically) at every step, so that a coordinator that dies leaves enough
/// for `smcpair sessions resume`.
public enum SessionRecord {
  /// Writes session.json atomically; returns what went wrong, nil when it was written.
  static func write(_ pair: PairCapture, run: CaptureRun) -> String? {
    var object: [String: Any] = [
      "id": pair.id, "pair": pair.name, "state": pair.state,
      "created": ISO8601DateFormatter().string(from: pair.created),
      "updated": UTCStamp.now(), "smcpair_version": run.options.version,
      "command": SecretRedaction.redact(arguments: run.options.commandLine),
      "filter": pair.filter, "dump_filter": pair.dumpFilter,
      "inventory": [
        "path": run.inventory.path,
        "hosts": hostsSnapshot(
          run.inventory, names: [pair.client.access.host.name, pair.server.access.host.name]),
      ] as [String: Any],
      "stop": stopObject(run.options.stop),
      "sides": [
        "client": side(pair.client, interfaces: pair.interfaces.client),
        "server": side(pair.server, interfaces: pair.interfaces.server),
      ],
    ]
    if let reason = pair.stopReason { object["stop_reason"] = reason }
    if let probe = pair.probe {
      object["clock_probe"] = [
        "offset_ns": probe.offsetNanoseconds, "half_width_ns": probe.halfWidthNanoseconds,
      ]
    }
    var workloads: [String: Any] = pair.recordedWorkloads
    for (role, workload) in pair.workloads {
      workloads[role.rawValue] = [
        "command": SecretRedaction.redact(workload.command),
        "log": (workload.logPath as NSString).lastPathComponent,
        "outcome": workload.outcome, "seconds": workload.seconds.map { $0 as Any } ?? NSNull(),
        "pid": workload.pid.map { Int($0) as Any } ?? NSNull(), "tag": workload.tag,
        "finished": workload.finished,
      ]
    }
    if !workloads.isEmpty { object["workload"] = workloads }
    if let merge = pair.merge {
      let model = merge.alignment.model
      func finite(_ value: Double) -> Any { value.isFinite ? value : NSNull() }
      var findings: [String: Int] = [:]
      for finding in merge.findings { findings[finding.kind.rawValue, default: 0] += 1 }
      object["alignment"] = [
        "verdict": merge.alignment.verdict.rawValue, "offset_ns": finite(model.offsetNanoseconds),
        "offset_lower_ns": finite(model.offsetLower), "offset_upper_ns": finite(model.offsetUpper),
        "skew_ppm": finite(model.skewPPM), "causality_violations": merge.alignment.causalityViolations,
      ]
      object["findings"] = findings
    }
    if let error = pair.mergeError { object["merge_error"] = error }
    let path = "\(pair.folder)/session.json"
    guard
      let data = try? JSONSerialization.data(
        withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    else { return "cannot encode \(path)" }
    let temporary = path + ".tmp"
    guard
      FileManager.default.createFile(
        atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600])
    else { return "cannot write \(temporary) (disk full, or the folder is gone or read-only?)" }
    guard rename(temporary, path) == 0 else {
      return "cannot rename \(temporary) to session.json: \(String(cString: strerror(errno)))"
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

  static func stopObject(_ stop: StopConditions) -> [String: Any] {
    var out: [String: Any] = [:]
    if let d = stop.durationSeconds { out["duration_s"] = d }
    if let p = stop.packets { out["packets"] = p }
    if let m = stop.maxFileBytes { out["max_file_bytes"] = m }
    return out
  }

  static func side(_ side: CaptureSide, interfaces: [String]) -> [String: Any] {
    let host = side.access.host
    var out: [String: Any] = [
      "host": host.name, "address": host.address, "port": host.port, "user": host.user,
      "remote_copy": side.remoteRetention ?? (side.remoteFiles.isEmpty ? NSNull() : "kept (not pulled)"),
      "data_address": host.dataAddress ?? NSNull(), "agent": host.agentPath,
      "agent_root": host.agentRoot ?? NSNull(), "become": host.become.rawValue,
      "remote_session": side.remoteSession, "interfaces": interfaces, "state": side.progress.state.rawValue,
      "packets": side.progress.packets, "bytes": side.progress.bytes, "drops": side.progress.drops,
      "remote_files": side.remoteFiles.map { ["path": $0.path, "size": $0.size, "sha256": $0.sha256] },
      "files": side.localFiles.map { ($0 as NSString).lastPathComponent }, "log": side.log,
      "preflight": [
        "host_key": side.preflight.hostKey, "auth": side.preflight.auth, "sudo": side.preflight.sudo,
        "agent": side.preflight.agent, "smc_dump": side.preflight.smcDump,
        "free_disk": side.preflight.freeDisk,
        "kernel": side.preflight.kernel,
      ],
    ]
    if let version = side.agentVersion { out["agent_version"] = version }
    if let started = side.startedNanoseconds { out["started_ns"] = started }
    if let stopped = side.stoppedNanoseconds { out["stopped_ns"] = stopped }
    if let reason = side.progress.stopReason { out["stop_reason"] = reason.description }
    if let early = side.endedEarly { out["ended_early"] = early }
    if let failure = side.failure { out["failure"] = failure.description }
    return out
  }

  /// One line of `smcpair sessions list`.
  public struct Summary: Sendable {
    public var id: String
    public var pair: String
    public var state: String
    public var created: String
    public var folder: String
  }

  public static func read(_ folder: String) -> [String: Any]? {
    guard let data = FileManager.default.contents(atPath: "\(folder)/session.json"),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { return nil }
    return object
  }

  /// Session folders under `out`, oldest first.
  public static func list(_ out: String) -> [Summary] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
    return names.sorted().compactMap { name in
      let folder = "\(out)/\(name)"
      guard let object = read(folder) else { return nil }
      return Summary(
        id: name, pair: object["pair"] as? String ?? "?", state: object["state"] as? String ?? "?",
        created: object["created"] as? String ?? "?", folder: folder)
    }
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
    guard let record = SessionRecord.read(folder) else {
      throw bad("missing or not JSON; is \(folder) a session folder? (smcpair sessions list)")
    }
    guard let inventoryInfo = record["inventory"] as? [String: Any],
      let path = inventoryInfo["path"] as? String,
      let sides = record["sides"] as? [String: Any], let pairName = record["pair"] as? String
    else { throw bad("lacks the inventory snapshot, the pair or the sides") }
    var inventory: Inventory
    do {
      // "hosts": the parsed hosts (since the raw text, which could hold secrets, is no longer
      // kept); "text": records written before that.
      if let text = inventoryInfo["hosts"] as? String ?? inventoryInfo["text"] as? String {
        inventory = try InventoryParser.parse(
          text, file: path + " (snapshot in session.json)",
          baseDirectory: (path as NSString).deletingLastPathComponent)
      } else {
        inventory = try InventoryParser.load(path: path)
      }
    } catch {
      throw bad("its inventory snapshot does not parse: \(error)")
    }
    // The original file's path, recorded again as it was (not the snapshot's label).
    inventory.path = path
    var hosts: [String: (String, String)] = [:]
    for role in ["client", "server"] {
      guard let side = sides[role] as? [String: Any], let host = side["host"] as? String,
        let remote = side["remote_session"] as? String, inventory.host(host) != nil
      else { throw bad("the \(role) side is incomplete") }
      hosts[role] = (host, remote)
    }
    try self.init(
      inventory: inventory,
      pairs: [InventoryPair(name: pairName, client: hosts["client"]!.0, server: hosts["server"]!.0)],
      options: options, ssh: ssh, knownHostsOverride: knownHostsOverride, events: events,
      resume: (folder, hosts["client"]!.1, hosts["server"]!.1))
    if let probe = record["clock_probe"] as? [String: Any], let offset = probe["offset_ns"] as? Double,
      let half = probe["half_width_ns"] as? Double
    {
      pairs[0].probe = ClockProbe(offsetNanoseconds: offset, halfWidthNanoseconds: half)
    }
    if let created = record["created"] as? String, let date = ISO8601DateFormatter().date(from: created) {
      pairs[0].created = date
    }
    // A side pulled, verified and removed from its host before the coordinator went away is
    // done: resume keeps its local files and does not ask its host again.
    for (side, role) in [(pairs[0].client, "client"), (pairs[0].server, "server")] {
      guard let entry = sides[role] as? [String: Any], entry["remote_copy"] as? String == "removed",
        let remote = entry["remote_files"] as? [[String: Any]], !remote.isEmpty
      else { continue }
      let local = remote.indices.map { "\(folder)/\(role)\($0 == 0 ? "" : "-\($0 + 1)").pcapng" }
      guard local.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) else { continue }
      side.restorePulled(
        remote: remote.compactMap { file in
          guard let path = file["path"] as? String, let size = file["size"] as? Int,
            let sha256 = file["sha256"] as? String
          else { return nil }
          return (path, Int64(size), sha256)
        }, local: local)
    }
    // Workloads the dead coordinator left running: ended by resume.
    pairs[0].recordedWorkloads = record["workload"] as? [String: Any] ?? [:]
    for (role, entry) in pairs[0].recordedWorkloads {
      guard let role = SideRole(rawValue: role), let entry = entry as? [String: Any],
        entry["finished"] as? Bool != true, let pid = entry["pid"] as? Int, let tag = entry["tag"] as? String
      else { continue }
      pairs[0].orphanWorkloads[role] = (Int32(clamping: pid), tag)
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
        let side = role == .client ? pair.client : pair.server
        guard let ssh = try? side.session("ending the workload left running") else { continue }
        if Workload.terminate(pid: orphan.pid, tag: orphan.tag, using: ssh) {
          side.note("ended the \(role.rawValue) workload left running (process group \(orphan.pid))")
        }
      }
    }
    for pair in pairs { pair.state = "stopping" }
    return finish()
  }
}
