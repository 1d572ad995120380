import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `smcpair capture` against lab hosts: real sshd, real agents, real libpcap.
@Suite(.serialized) struct CaptureEndToEnd {
  @Test func emulatorPairBothDirectionsPairsTCPAndCDCWithZeroInsideTheBounds() throws {
    let env = try CaptureLab(hosts: 2, tag: "ca")
    let result = try env.capture(
      ["--pair", "pair1", "--json"] + env.emulatorWorkload(scenario: "both", extra: ["--clc-version", "2"]))
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let summary = try env.summary(result)
    let pair = try #require((summary["pairs"] as? [[String: Any]])?.first)
    #expect(pair["state"] as? String == "complete")
    // Each side's bytes, per capture interface, add up to the side's total.
    for role in ["client", "server"] {
      let side = pair.object("sides").object(role)
      let interfaces = try #require(side["interfaces"] as? [[String: Any]], "\(side)")
      #expect(!interfaces.isEmpty && interfaces.allSatisfy { ($0["name"] as? String)?.isEmpty == false })
      let total = interfaces.reduce(0) { $0 + (($1["bytes"] as? Int) ?? 0) }
      #expect(total > 0 && total == side["bytes"] as? Int, "\(side)")
    }
    let alignment = pair.object("alignment")
    #expect(alignment["verdict"] as? String == "bounded")
    #expect((alignment.number("offset_lower_ns") ?? 1) <= 0)
    #expect((alignment.number("offset_upper_ns") ?? -1) >= 0)
    #expect(alignment["causality_violations"] as? Int == 0)
    // Progress and the barrier line go to stderr with --json.
    #expect(result.stderr.contains("capturing on both sides"))
    let folder = try #require(pair["folder"] as? String)
    let file = try Data(contentsOf: URL(fileURLWithPath: folder + "/alignment.json"))
    let aligned = try #require(try JSONSerialization.jsonObject(with: file) as? [String: Any])
    let pairs = aligned.object("pairs")
    #expect((pairs["tcp"] as? Int ?? 0) > 0)
    #expect((pairs["clc"] as? Int ?? 0) == 3)
    #expect((pairs["cdc"] as? Int ?? 0) > 0)
    #expect((pairs["data"] as? Int ?? 0) > 0)
    // Captures and everything derived from them are owner-only; digests match the agents'.
    let record = try env.record(folder)
    #expect(record["state"] as? String == "complete")
    for role in ["client", "server"] {
      let local = "\(folder)/\(role).pcapng"
      #expect(CaptureLab.mode(local) == 0o600)
      let side = record.object("sides").object(role)
      let remote = try #require((side["remote_files"] as? [[String: Any]])?.first)
      #expect(remote["sha256"] as? String == (try CaptureLab.sha256(local)))
      #expect((side["preflight"] as? [String: Any])?["agent"] as? String == "current")
      #expect((side["log"] as? [String])?.contains { $0.contains("SHA-256 verified") } == true)
    }
    #expect(CaptureLab.mode(folder + "/merged.pcapng") == 0o600)
    #expect(CaptureLab.mode(folder) == 0o700)
    for log in ["client-cmd.log", "server-cmd.log"] {
      #expect(FileManager.default.fileExists(atPath: "\(folder)/\(log)"))
    }
    #expect(
      (try String(contentsOfFile: folder + "/client-cmd.log", encoding: .utf8)).contains("SMC-R v2"))
    // tshark reads the merged file: every packet of both sides.
    let capinfos = try Tools.run(["capinfos", "-c", "-M", folder + "/merged.pcapng"])
    let count = { (path: String) throws -> Int in
      let out = try Tools.run(["capinfos", "-c", "-M", path]).stdout
      return Int(out.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
    }
    #expect(capinfos.status == 0)
    #expect(
      try count(folder + "/merged.pcapng") == (try count(folder + "/client.pcapng"))
        + (try count(folder + "/server.pcapng")))
    #expect(env.agentsGone().isEmpty)
  }

  @Test func iperf3WorkloadWithFilterAndTheDeclinedScenario() throws {
    let env = try CaptureLab(hosts: 2, tag: "cb")
    _ = try Tools.require("iperf3")
    let result = try env.capture([
      "--pair", "pair1", "--filter", "tcp port 5201", "--json",
      "--server-cmd", "iperf3 -s -1 -p 5201", "--client-cmd", "iperf3 -c {server} -p 5201 -t 1 -b 100M",
    ])
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let pair = try #require((try env.summary(result)["pairs"] as? [[String: Any]])?.first)
    let alignment = pair.object("alignment")
    #expect((alignment["pairs"] as? Int ?? 0) > 100)
    #expect(
      (alignment.number("offset_lower_ns") ?? 1) <= 0 && (alignment.number("offset_upper_ns") ?? -1) >= 0)
    #expect(alignment["causality_violations"] as? Int == 0)
    let folder = try #require(pair["folder"] as? String)
    #expect((try String(contentsOfFile: folder + "/client-cmd.log", encoding: .utf8)).contains("iperf Done"))
    // Only the filtered port was captured (no ssh, no emulator fabric).
    let ports = try Tools.run([
      "tshark", "-r", folder + "/client.pcapng", "-Y", "not tcp.port == 5201", "-T", "fields", "-e",
      "frame.number",
    ])
    #expect(ports.status == 0)
    #expect(ports.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)

    // A declined handshake: the finding reaches the summary and report.
    let declined = try env.capture(
      ["--pair", "pair1", "--json"]
        + env.emulatorWorkload(scenario: "decline", port: 7100, extra: ["--reason", "NOSMCRDEV"]))
    #expect(declined.status == 0, "\(declined.stdout)\n\(declined.stderr)")
    let declinedPair = try #require((try env.summary(declined)["pairs"] as? [[String: Any]])?.first)
    let findings = declinedPair.object("findings")
    #expect(findings.keys.contains { $0.contains("decline") }, "\(findings)")
  }

  /// As on SMC-R fleets, smcpair logs in to the management address (eth0) while the workload
  /// runs between the data addresses (data0, `{server}`): the merge must not take the SSH
  /// address for the client's. The hosts share this machine's clock, so the true offset is 0.
  @Test func iperf3BetweenDataAddressesIsDrawnClientToServerWithZeroInsideTheBounds() throws {
    let env = try CaptureLab(hosts: 2, tag: "cd")
    let tshark = try Tools.require("tshark")
    _ = try Tools.require("iperf3")
    let (client, server) = (env.dataAddress(0), env.dataAddress(1))
    #expect(client != env.address(0) && server != env.address(1), "the lab has a separate data network")
    let result = try env.capture([
      "--pair", "pair1", "--filter", "tcp port 5202", "--json",
      "--server-cmd", "iperf3 -s -1 -p 5202", "--client-cmd", "iperf3 -c {server} -p 5202 -t 2 -b 50M",
    ])
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let pair = try #require((try env.summary(result)["pairs"] as? [[String: Any]])?.first)
    let folder = try #require(pair["folder"] as? String)
    #expect((try String(contentsOfFile: folder + "/client-cmd.log", encoding: .utf8)).contains("iperf Done"))
    let file = try Data(contentsOf: URL(fileURLWithPath: folder + "/alignment.json"))
    let alignment = try #require(try JSONSerialization.jsonObject(with: file) as? [String: Any])
    // A bound that could not be established (null) does not contain 0 either.
    let lower = alignment.number("offset_lower_ns") ?? .infinity
    let upper = alignment.number("offset_upper_ns") ?? -.infinity
    print("iperf3 over data0: offset bounds \(lower)..\(upper) ns, pairs \(alignment.object("pairs"))")
    #expect(lower <= 0 && upper >= 0, "bounds \(lower)..\(upper) ns")
    #expect(alignment["causality_violations"] as? Int == 0)
    #expect(alignment["client_addresses"] as? [String] == [client])

    // Every packet to the server's port, on either host's NIC, is drawn client→server:
    // outbound in the client's capture, inbound in the server's, and a pair's comment says so.
    let fields = try Tools.run([
      tshark, "-r", folder + "/merged.pcapng", "-Y", "tcp.dstport == 5202", "-T", "fields", "-E",
      "separator=|",
      "-e", "frame.interface_name", "-e", "ip.src", "-e", "ip.dst", "-e", "frame.packet_flags_direction",
      "-e", "frame.comment",
    ])
    #expect(fields.status == 0, "\(fields.stderr)")
    var counts = (outbound: 0, inbound: 0, commented: 0, wrong: [String]())
    for line in fields.stdout.split(separator: "\n") {
      let field = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
      guard field.count == 5, field[1] == client, field[2] == server else {
        counts.wrong.append(String(line))
        continue
      }
      // pcapng EPB flags: direction 1 inbound, 2 outbound.
      let direction = Int(field[3].replacingOccurrences(of: "0x", with: ""), radix: 16) ?? 0
      switch (field[0].hasPrefix("h1:"), direction) {
      case (true, 2): counts.outbound += 1
      case (false, 1): counts.inbound += 1
      default: counts.wrong.append(String(line))
      }
      if !field[4].isEmpty {
        counts.commented += 1
        if !field[4].contains("client->server") { counts.wrong.append(String(line)) }
      }
    }
    print(
      "iperf3 over data0: \(counts.outbound) outbound (h1), \(counts.inbound) inbound (h2), \(counts.commented) paired"
    )
    #expect(counts.wrong.isEmpty, "not drawn client→server: \(counts.wrong.prefix(5))")
    #expect(counts.outbound > 100 && counts.inbound > 100 && counts.commented > 100)
    #expect(env.agentsGone().isEmpty)
  }

  /// --packets stops the pair when a side has that many; the still-running client workload
  /// (a long UDP blast) is ended with its process group.
  @Test func packetLimitStopsThePairAndEndsTheWorkload() throws {
    let env = try CaptureLab(hosts: 2, tag: "cj")
    // 20 s of UDP at 200 datagrams/s unless something ends it.
    let result = try env.capture([
      "--pair", "pair1", "--packets", "50", "--filter", "udp port 9999", "--json",
      "--client-cmd", "\(env.smcpair) lab blast --to {server}:9999 --rate 200 --seconds 20",
    ])
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let pair = try #require((try env.summary(result)["pairs"] as? [[String: Any]])?.first)
    #expect((pair["stop_reason"] as? String)?.contains("packet count reached") == true, "\(pair)")
    let folder = try #require(pair["folder"] as? String)
    let record = try env.record(folder)
    let outcome = record.object("workload").object("client")["outcome"] as? String
    #expect(
      outcome == "ended by signal TERM" || outcome?.hasPrefix("exit status") == true, "\(outcome ?? "")")
    let blasts = try Tools.run(["pgrep", "-f", "blast --to \(env.dataAddress(1))"])
    #expect(blasts.stdout.isEmpty, "workload still running: \(blasts.stdout)")
    #expect(env.agentsGone().isEmpty)
  }

  @Test func ctrlCStopsBothSidesCleanlyAndMerges() throws {
    let env = try CaptureLab(hosts: 2, tag: "cc")
    let process = try env.startCapture(["--pair", "pair1", "--until-stopped"])
    usleep(500_000)
    kill(process.pid, SIGINT)
    let status = process.wait(seconds: 60)
    let text = env.runOutput
    #expect(status == 0, "\(text)")
    #expect(text.contains("stopped by Ctrl-C"))
    // Under each side's summary line ("  client h1: ..."), the bytes it wrote per interface.
    let lines = text.split(separator: "\n").map(String.init)
    for role in ["client", "server"] {
      let at = try #require(lines.firstIndex { $0.hasPrefix("  \(role) ") }, "\(text)")
      let host = lines[at].split(separator: " ").dropFirst().first.map(String.init) ?? "?"
      let written = at + 1 < lines.count ? lines[at + 1] : ""
      #expect(
        written.hasPrefix("    \(host) ") && (written.hasSuffix(" B") || written.hasSuffix("iB")), "\(text)")
    }
    let folder = try #require(env.sessionFolders().first)
    #expect(try env.record(folder)["state"] as? String == "complete")
    #expect(env.agentsGone().isEmpty)
  }

  /// A second Ctrl-C aborts at once; the agents keep capturing (to their limit) and
  /// `sessions resume` collects both sides.
  @Test func secondCtrlCAbortsAndResumeCollects() throws {
    let env = try CaptureLab(hosts: 2, tag: "ck")
    let process = try env.startCapture(["--pair", "pair1", "--until-stopped"])
    kill(process.pid, SIGINT)
    usleep(50_000)
    kill(process.pid, SIGINT)
    #expect(process.wait(seconds: 10) == 130)
    let stderr = env.runErrors
    #expect(stderr.contains("smcpair sessions resume"), "\(stderr)")
    // Whether an agent still captures now depends on whether the first Ctrl-C's stop reached
    // it before the second ended the run (50 ms on a loaded machine): either way it keeps its
    // files for `resume`, and only this session's two agents may be left.
    usleep(300_000)
    #expect(env.agentProcesses().count <= 2, "\(env.agentProcesses())")
    let folder = try #require(env.sessionFolders().first)
    let id = (folder as NSString).lastPathComponent
    let resumed = try Tools.run([env.smcpair, "sessions", "resume", id, "--out", env.sessions])
    #expect(resumed.status == 0, "\(resumed.stdout)\n\(resumed.stderr)")
    let record = try env.record(folder)
    #expect(record["state"] as? String == "complete")
    for role in ["client", "server"] {
      let files = record.object("sides").object(role)["files"] as? [Any] ?? []
      #expect(!files.isEmpty, "\(role): nothing collected")
    }
    #expect(env.agentsGone().isEmpty, "agents left: \(env.agentProcesses())")
  }
}
