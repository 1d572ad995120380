import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `smcpair capture` with each capture engine between lab hosts (real sshd, the hosts' real
/// tcpdump, the lab's stand-in smcdump-ex, real iperf3 and the SMC peer emulator): aligned,
/// verified, and nothing left running or made on the hosts afterwards.
@Suite(.serialized) struct CaptureEngineEndToEnd {
  @Test func tcpdumpOnBothSidesWithIperf3IsVerifiedAlignedAndLeavesNothing() throws {
    let env = try CaptureLab(hosts: 2, tag: "ct")
    let result = try env.capture([
      "--pair", "pair1", "--json", "--engine", "tcpdump", "--filter", "tcp port 5203",
      "--server-cmd", "iperf3 -s -1 -p 5203", "--client-cmd", "iperf3 -c {server} -p 5203 -n 2M -l 1000",
    ])
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let pair = try env.onlyPair(result)
    try env.expectEngines(pair, client: "tcpdump", server: "tcpdump")
    try env.expectAlignedAroundZero(pair, kinds: ["tcp"])
    let folder = try #require(pair["folder"] as? String)
    try env.expectVerifiedAndRemoved(folder, suffix: ".pcap")
    // tcpdump wrote nanosecond pcap, as the host's tcpdump supports it.
    let info = try Tools.run(["capinfos", "-t", folder + "/client.pcap"])
    #expect(info.stdout.contains("nanosecond pcap"), "\(info.stdout)")
    #expect(try env.toolsGone().isEmpty)
    try env.expectOnlyLabDumpDevices()
  }

  @Test func agentOnOneSideTcpdumpOnTheOtherPairsTheEmulatorsHandshake() throws {
    let env = try CaptureLab(hosts: 2, tag: "cm")
    // h2 (the server) says engine: tcpdump in the inventory; h1 keeps auto (the agent).
    let inventory = try env.editedInventory("mixed.yaml") { text in
      text.replacingOccurrences(
        of: "    smc_dump: \"smc-dummy0002\"\n",
        with: "    smc_dump: \"smc-dummy0002\"\n    engine: tcpdump\n")
    }
    let result = try env.capture(
      ["--pair", "pair1", "--json", "--filter", "tcp port 7010"]
        + env.emulatorWorkload(scenario: "both", port: 7010), inventory: inventory)
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let pair = try env.onlyPair(result)
    try env.expectEngines(pair, client: "agent", server: "tcpdump")
    // tcpdump alone cannot turn the SMC dump on: the server side has the NIC only, so TCP and
    // CLC pair, CDC does not.
    try env.expectAlignedAroundZero(pair, kinds: ["tcp", "clc"])
    #expect(result.stderr.contains("tcpdump cannot turn the SMC dump on"), "\(result.stderr)")
    #expect(env.agentsGone().isEmpty)
    #expect(try env.toolsGone().isEmpty)
  }

  @Test func smcdumpExOnBothSidesPairsCDCAndDeletesItsDevices() throws {
    let env = try CaptureLab(hosts: 2, tag: "cx")
    let result = try env.capture(
      ["--pair", "pair1", "--json", "--engine", "smcdump-ex", "--filter", "tcp port 7011"]
        + env.emulatorWorkload(scenario: "both", port: 7011))
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let pair = try env.onlyPair(result)
    try env.expectEngines(pair, client: "smcdump-ex", server: "smcdump-ex")
    try env.expectAlignedAroundZero(pair, kinds: ["tcp", "clc", "cdc", "data"])
    let folder = try #require(pair["folder"] as? String)
    try env.expectVerifiedAndRemoved(folder, suffix: ".pcap")
    // -m all is tcpdump -i any: Linux cooked captures, NIC and dump device in one file.
    let info = try Tools.run(["capinfos", "-E", folder + "/server.pcap"])
    #expect(info.stdout.contains("Linux cooked-mode capture v2"), "\(info.stdout)")
    #expect(try env.toolsGone().isEmpty)
    try env.expectOnlyLabDumpDevices()
  }

  @Test func aDumpDeviceLeftBySmcdumpExIsReported() throws {
    let env = try CaptureLab(hosts: 2, tag: "cl")
    // A stand-in that keeps its device, as a broken smcdump-ex would.
    let wrapper = env.work.file("leaky-smcdump-ex")
    try "#!/bin/sh\nSMCPAIR_STANDIN_KEEP_DEVICE=1 exec \(env.labFolder)/bin/smcdump-ex \"$@\"\n".write(
      toFile: wrapper, atomically: true, encoding: .utf8)
    chmod(wrapper, 0o755)
    let inventory = try env.editedInventory("leaky.yaml") { text in
      text.replacingOccurrences(of: "\(env.labFolder)/bin/smcdump-ex", with: wrapper)
    }
    let result = try env.capture(
      ["--pair", "pair1", "--json", "--engine", "smcdump-ex", "--filter", "tcp port 7012"]
        + env.emulatorWorkload(scenario: "both", port: 7012), inventory: inventory)
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let pair = try env.onlyPair(result)
    var left: [String] = []
    for (index, role) in ["client", "server"].enumerated() {
      let devices = pair.object("sides").object(role)["left_devices"] as? [String] ?? []
      #expect(devices.count == 1 && devices.allSatisfy { $0.hasPrefix("smc-dummy") }, "\(pair)")
      for device in devices {
        left.append(device)
        #expect(try env.lab.run(index, ["ip", "link", "show", device]).status == 0)
        _ = try env.lab.run(index, ["ip", "link", "del", device])
      }
    }
    #expect(left.count == 2)
    try env.expectOnlyLabDumpDevices()
    #expect(try env.toolsGone().isEmpty)
  }

  @Test func coordinatorKilledThenResumeStopsTheHostsTcpdumpAndCollects() throws {
    let env = try CaptureLab(hosts: 2, tag: "cr")
    let process = try env.startCapture(["--pair", "pair1", "--duration", "120s", "--engine", "tcpdump"])
    try env.blast()
    kill(process.pid, SIGKILL)
    _ = process.wait(seconds: 10)
    // tcpdump runs detached from the SSH connection: still capturing without its coordinator.
    for role in ["client", "server"] {
      #expect(
        env.toolProcesses().contains { $0.contains("tcpdump") && $0.contains("-\(role)/capture.pcap") },
        "\(role): \(env.toolProcesses())")
    }
    let folder = try #require(env.sessionFolders().first)
    let id = (folder as NSString).lastPathComponent
    let resumed = try Tools.run([env.smcpair, "sessions", "resume", id, "--out", env.sessions])
    #expect(resumed.status == 0, "\(resumed.stdout)\n\(resumed.stderr)")
    let record = try env.record(folder)
    #expect(record["state"] as? String == "complete", "\(record)")
    for role in ["client", "server"] {
      let side = record.object("sides").object(role)
      #expect(side["engine"] as? String == "tcpdump")
      #expect(side["remote_copy"] as? String == "removed")
      #expect(FileManager.default.fileExists(atPath: "\(folder)/\(role).pcap"))
    }
    #expect(try env.toolsGone().isEmpty)
  }

  @Test func aHostWithoutSha256sumIsPulledAndCheckedBySizeAndStructure() throws {
    let env = try CaptureLab(hosts: 2, tag: "cn")
    // h2's commands see a PATH with every tool of /usr/bin and /usr/sbin except sha256sum.
    let bin = env.work.file("no-sha256sum")
    try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
    for folder in ["/usr/bin", "/usr/sbin"] {
      for name in try FileManager.default.contentsOfDirectory(atPath: folder) where name != "sha256sum" {
        _ = symlink("\(folder)/\(name)", "\(bin)/\(name)")
      }
    }
    // SFTP (internal-sftp, which a ForceCommand replaces) goes to the sftp-server program.
    let script = env.work.file("no-sha256sum.sh")
    try """
    #!/bin/sh
    case $SSH_ORIGINAL_COMMAND in internal-sftp|sftp) exec /usr/lib/openssh/sftp-server ;; esac
    exec /usr/bin/env PATH=\(bin) /bin/sh -c "$SSH_ORIGINAL_COMMAND"

    """.write(toFile: script, atomically: true, encoding: .utf8)
    chmod(script, 0o755)
    try env.lab.forceCommand(host: 1, script)
    let result = try env.capture([
      "--pair", "pair1", "--json", "--engine", "tcpdump", "--filter", "tcp port 5204",
      "--server-cmd", "iperf3 -s -1 -p 5204", "--client-cmd", "iperf3 -c {server} -p 5204 -n 1M -l 1000",
    ])
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let pair = try env.onlyPair(result)
    try env.expectAlignedAroundZero(pair, kinds: ["tcp"])
    let folder = try #require(pair["folder"] as? String)
    let record = try env.record(folder)
    let server = record.object("sides").object("server")
    let client = record.object("sides").object("client")
    #expect((server["remote_files"] as? [[String: Any]])?.first?["sha256"] as? String == "")
    #expect(
      (server["log"] as? [String])?.contains { $0.contains("size and structure verified (no sha256sum") }
        == true,
      "\(server["log"] ?? "")")
    #expect(((client["remote_files"] as? [[String: Any]])?.first?["sha256"] as? String)?.count == 64)
    #expect(server["remote_copy"] as? String == "removed")
    #expect(try env.toolsGone().isEmpty)
  }

  @Test func hostsCheckOnAnAgentlessHostShowsTheFactsAndAutosChoice() throws {
    let env = try CaptureLab(hosts: 2, tag: "ch")
    // `lab up --agentless h2` on the running lab rewrites its inventory.
    let up = try Tools.run([env.smcpair, "lab", "up", "--hosts", "2", "--agentless", "h2"] + env.lab.common)
    #expect(up.status == 0, "\(up.stderr)")
    let text = try String(contentsOfFile: env.inventory, encoding: .utf8)
    #expect(text.contains("deploy_agent: false"))
    let check = try Tools.run([env.smcpair, "hosts", "check", "-i", env.inventory, "--json"])
    #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
    let lines = check.stdout.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    let h1 = try #require(lines.first { $0["target"] as? String == "h1" }).object("capture")
    let h2 = try #require(lines.first { $0["target"] as? String == "h2" }).object("capture")
    #expect(h1["engine"] as? String == "agent")
    #expect(h2["engine"] as? String == "smcdump-ex", "\(h2)")
    #expect((h2["engine_reason"] as? String)?.contains("deploy_agent: false") == true, "\(h2)")
    #expect(h2["architecture"] as? String == "x86_64")
    #expect(h2["os"] as? String == "Linux")
    #expect((h2["kernel"] as? String)?.isEmpty == false)
    #expect(h2["dump_available"] as? Bool == false)
    #expect(h2["smc_module"] as? Bool == false)
    #expect((h2["tcpdump"] as? String)?.hasSuffix("tcpdump") == true)
    #expect((h2["smcdump_ex"] as? String)?.hasSuffix("/bin/smcdump-ex") == true)
    // The terminal form says the same in words.
    let plain = try Tools.run([env.smcpair, "hosts", "check", "-i", env.inventory, "h2"])
    #expect(
      plain.stdout.contains("engine (auto): smcdump-ex - no agent (deploy_agent: false"), "\(plain.stdout)")
    #expect(plain.stdout.contains("SMC module not loaded"))
    // A capture with auto then uses smcdump-ex on h2 and the agent on h1.
    let result = try env.capture(
      ["--pair", "pair1", "--json", "--filter", "tcp port 7013"]
        + env.emulatorWorkload(scenario: "both", port: 7013))
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    try env.expectEngines(try env.onlyPair(result), client: "agent", server: "smcdump-ex")
    #expect(try env.toolsGone().isEmpty)
    try env.expectOnlyLabDumpDevices()
  }
}

extension CaptureLab {
  func onlyPair(_ result: ProcessResult) throws -> [String: Any] {
    try #require((try summary(result)["pairs"] as? [[String: Any]])?.first, "\(result.stdout)")
  }

  func expectEngines(
    _ pair: [String: Any], client: String, server: String, sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    #expect(
      pair.object("sides").object("client")["engine"] as? String == client, sourceLocation: sourceLocation)
    #expect(
      pair.object("sides").object("server")["engine"] as? String == server, sourceLocation: sourceLocation)
  }

  /// The lab's hosts share one clock: the truth is 0, and it must be inside the bounds.
  func expectAlignedAroundZero(
    _ pair: [String: Any], kinds: [String], sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    #expect(pair["state"] as? String == "complete", "\(pair)", sourceLocation: sourceLocation)
    let alignment = pair.object("alignment")
    #expect(alignment["verdict"] as? String == "bounded", "\(alignment)", sourceLocation: sourceLocation)
    #expect((alignment.number("offset_lower_ns") ?? 1) <= 0, sourceLocation: sourceLocation)
    #expect((alignment.number("offset_upper_ns") ?? -1) >= 0, sourceLocation: sourceLocation)
    #expect(alignment["causality_violations"] as? Int == 0, sourceLocation: sourceLocation)
    let folder = try #require(pair["folder"] as? String)
    let file = try Data(contentsOf: URL(fileURLWithPath: folder + "/alignment.json"))
    let pairs = try #require(try JSONSerialization.jsonObject(with: file) as? [String: Any]).object("pairs")
    for kind in kinds {
      #expect((pairs[kind] as? Int ?? 0) > 0, "\(kind): \(pairs)", sourceLocation: sourceLocation)
    }
  }

  /// Both pulled files match the digests the hosts computed, and the hosts' copies are gone.
  func expectVerifiedAndRemoved(
    _ folder: String, suffix: String, sourceLocation: SourceLocation = #_sourceLocation
  )
    throws
  {
    let record = try record(folder)
    for role in ["client", "server"] {
      let local = "\(folder)/\(role)\(suffix)"
      #expect(CaptureLab.mode(local) == 0o600, sourceLocation: sourceLocation)
      let side = record.object("sides").object(role)
      let remote = try #require((side["remote_files"] as? [[String: Any]])?.first)
      #expect(remote["sha256"] as? String == (try CaptureLab.sha256(local)), sourceLocation: sourceLocation)
      #expect(side["remote_copy"] as? String == "removed", "\(side)", sourceLocation: sourceLocation)
      let path = try #require(remote["path"] as? String)
      #expect(!FileManager.default.fileExists(atPath: path), sourceLocation: sourceLocation)
      #expect(
        !FileManager.default.fileExists(atPath: (path as NSString).deletingLastPathComponent),
        sourceLocation: sourceLocation)
    }
  }

  /// Processes (tcpdump, timeout, the stand-in) still working in this lab's capture folders.
  func toolProcesses() -> [String] {
    var found: [String] = []
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(entry) != nil
    {
      guard let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
        let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8), !stat.contains(") Z")
      else { continue }
      let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
      if line.contains(labFolder + "/captures/") { found.append("\(entry): \(line)") }
    }
    return found
  }

  func toolsGone(within seconds: Double = 10) throws -> [String] {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if toolProcesses().isEmpty { return [] }
      usleep(100_000)
    }
    return toolProcesses()
  }

  /// Each host has only the lab's own dump device (`ip link`): smcdump-ex deleted its own.
  func expectOnlyLabDumpDevices(sourceLocation: SourceLocation = #_sourceLocation) throws {
    for (index, host) in lab.status.hosts.enumerated() {
      let links = try lab.run(index, ["ip", "-o", "link", "show"]).stdout
      let dumps = links.split(separator: "\n").compactMap { line -> String? in
        let name = line.split(separator: ":").dropFirst().first?.trimmingCharacters(in: .whitespaces) ?? ""
        return name.hasPrefix("smc-dummy") ? String(name.split(separator: "@").first ?? "") : nil
      }
      #expect(dumps == [host.dump_device], "\(host.name): \(dumps)", sourceLocation: sourceLocation)
    }
  }
}
