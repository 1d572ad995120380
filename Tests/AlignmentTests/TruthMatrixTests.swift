import Foundation
import TestSupport
import Testing

/// The truth matrix: real captures of two lab hosts (which share one kernel clock, so the
/// true offset is 0), reworked into the files users bring — cut mid-connection, out of time
/// order, without direction flags, shifted and skewed, swapped, doubled, unrelated — and
/// merged both ways (in memory and within the pairing window). Every case must give bounds
/// that hold the truth or say plainly that it cannot tell, with no causality violation and
/// every packet it gives a direction drawn the right way.
@Suite(.serialized) struct TruthMatrix {
  /// Two captures of one conversation and the addresses the traffic used.
  struct Captures {
    var label: String
    var client: String
    var server: String
    var clientAddress: String
    var serverAddress: String
  }

  /// What a merge said, for the matrix table.
  struct Outcome: CustomStringConvertible {
    var status: Int32
    var verdict: String
    var lower: Double?
    var upper: Double?
    var truth: Double
    var violations: Int
    var directed: Int
    var undirected: Int
    var wrong: Int
    var stderr = ""
    var pairs: [String: Int] = [:]
    var description: String {
      let bounds =
        lower.map { l in "[\(Int(l)), \(upper.map { "\(Int($0))" } ?? "+inf")]" } ?? "no bounds"
      return
        "exit \(status), \(verdict), pairs \(pairs.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: " ")), truth \(Int(truth)) ns, bounds \(bounds), violations \(violations), directions \(directed) right / \(wrong) wrong / \(undirected) none"
    }
  }

  /// Two networks: SSH on eth0 (the inventory address), the traffic on data0 — the SMC-R
  /// fleet's layout, where the login address is never the traffic's; or one network for both.
  @Test(arguments: [false, true])
  func everyCaseHoldsTheTruthOrSaysItCannotTell(singleNetwork: Bool) throws {
    let lab = try TestLab(hosts: 2, tag: "x", singleNetwork: singleNetwork)
    if !singleNetwork {
      #expect(
        lab.status.hosts.allSatisfy { $0.trafficAddress != $0.address },
        "the login address is not the traffic's")
    }
    let dir = try TemporaryDirectory("smcpair-truth")
    let emulator = try captureEmulator(lab, dir)
    let iperf = try captureIperf3(lab, dir)
    var rows: [String] = []
    for base in [emulator, iperf] {
      rows += try derivedCases(base, dir)
    }
    // Unrelated captures: no packet in common; an explicit verdict and no loss findings.
    let unrelated = try merge(
      "unrelated", emulator.client, iperf.server, dir, truth: 0, addresses: (emulator.clientAddress, "-"))
    #expect(unrelated.status == 3, "\(unrelated)")
    #expect(unrelated.verdict == "none", "\(unrelated)")
    let findings = try String(contentsOfFile: dir.file("unrelated-memory/timeline.jsonl"), encoding: .utf8)
    #expect(!findings.contains("cdc-not-received") && !findings.contains("cdc-not-sent"), "\(findings)")
    rows.append("unrelated: \(unrelated)")
    let layout = singleNetwork ? "one network" : "management != data network"
    print("truth matrix (\(layout)):\n" + rows.joined(separator: "\n"))
  }

  /// The cases made from one pair of captures.
  func derivedCases(_ base: Captures, _ dir: TemporaryDirectory) throws -> [String] {
    var rows: [String] = []
    let tag = base.label
    @discardableResult
    func expectTruth(
      _ name: String, _ client: String, _ server: String, truth: Double = 0, skew: Double = 0,
      swapped: Bool = false
    ) throws -> Outcome {
      let addresses =
        swapped ? (base.serverAddress, base.clientAddress) : (base.clientAddress, base.serverAddress)
      let outcome = try merge(
        "\(tag)-\(name)", client, server, dir, truth: truth, addresses: addresses, skew: skew)
      rows.append("\(tag) \(name): \(outcome) \(outcome.stderr)")
      #expect(outcome.violations == 0, "\(tag) \(name): \(outcome)")
      #expect(outcome.wrong == 0, "\(tag) \(name): \(outcome)")
      if outcome.verdict == "cannot-tell" {
        #expect(outcome.status == 3, "\(tag) \(name): \(outcome)")
      } else {
        #expect(outcome.status == 0, "\(tag) \(name): \(outcome)")
        #expect(outcome.undirected == 0, "\(tag) \(name): every packet of the two hosts has a direction")
      }
      return outcome
    }
    let captured = try expectTruth("as captured", base.client, base.server)
    // Mid-connection: every packet up to the last handshake packet cut from both sides.
    let cut = [base.client, base.server].map { dir.file(($0 as NSString).lastPathComponent + ".mid.pcap") }
    for (file, out) in zip([base.client, base.server], cut) {
      let last = try lastHandshakeFrame(file)
      #expect(
        try Tools.run(["editcap", "-F", "nsecpcap", "-r", file, out, "\(last + 3)-999999999"]).status == 0)
      #expect(try lastHandshakeFrame(out) == 0, "no SYN nor CLC left in \(out)")
    }
    try expectTruth("mid-connection", cut[0], cut[1])
    // One direction only, no handshake, no recorded direction: either way round fits, so
    // nothing can tell who sent what; the merge says so instead of guessing.
    let tshark = try Tools.require("tshark")
    var oneWay: [String] = []
    for file in cut {
      let out = file + ".oneway.pcap"
      let filter = "ip.src == \(base.clientAddress) && !udp"
      #expect(try Tools.run([tshark, "-r", file, "-F", "nsecpcap", "-Y", filter, "-w", out]).status == 0)
      oneWay.append(out)
    }
    if base.label == "iperf3" {
      let outcome = try merge(
        "\(tag)-one-way", oneWay[0], oneWay[1], dir, truth: 0,
        addresses: (base.clientAddress, base.serverAddress))
      rows.append("\(tag) one direction, no handshake, no flags: \(outcome)")
      #expect(outcome.verdict == "cannot-tell" && outcome.status == 3, "\(outcome)")
      #expect(outcome.wrong == 0 && outcome.directed == 0, "\(outcome)")
    }
    // A --client-address that is in no packet (say, the SSH address) is reported, not used.
    if base.label == "iperf3" {
      let given = try merge(
        "\(tag)-unused-address", base.client, base.server, dir, truth: 0,
        addresses: (base.clientAddress, base.serverAddress), extra: ["--client-address", "10.255.255.1"])
      rows.append("\(tag) --client-address not in the traffic: \(given)")
      #expect(given.status == 0 && given.wrong == 0 && given.violations == 0, "\(given)")
      let report = try String(
        contentsOfFile: dir.file("\(tag)-unused-address-memory/report.md"), encoding: .utf8)
      #expect(report.contains("--client-address 10.255.255.1 is in no packet both captures share: not used"))
    }
    // Out of time order: one part of each file written after the other (as per-interface
    // runs are), then shifted and skewed as well.
    let disordered = try [base.client, base.server].map { try outOfOrder($0, dir) }
    let disorderedOutcome = try expectTruth("out of order", disordered[0], disordered[1])
    #expect(disorderedOutcome.pairs == captured.pairs, "out of order loses no pair: \(disorderedOutcome)")
    for (offset, ppm) in [(1_000_000_000, 50.0), (-1_000_000_000, -50.0)] {
      let skewed = dir.file("\(tag)-skewed\(offset).pcap")
      let reference = try firstTime(base.client)
      let start = try skew(base.server, to: skewed, offset: offset, ppm: ppm)
      let truth = Double(offset) + ppm * 1e-6 * Double(reference - start)
      try expectTruth(
        "offset \(offset / 1_000_000) ms skew \(ppm) ppm", base.client, skewed, truth: truth, skew: ppm)
      let skewedCut = dir.file("\(tag)-skewed-cut\(offset).pcap")
      let cutStart = try skew(cut[1], to: skewedCut, offset: offset, ppm: ppm)
      let cutReference = try firstTime(cut[0])
      try expectTruth(
        "mid-connection, offset \(offset / 1_000_000) ms skew \(ppm) ppm", cut[0], skewedCut,
        truth: Double(offset) + ppm * 1e-6 * Double(cutReference - cutStart), skew: ppm)
    }
    // Swapped: refused, naming the files, or (no handshake left to tell) merged truthfully.
    let swapped = try merge(
      "\(tag)-swapped", base.server, base.client, dir, truth: 0,
      addresses: (base.serverAddress, base.clientAddress))
    rows.append("\(tag) swapped: \(swapped)")
    #expect(swapped.status == 65, "\(swapped)")
    #expect(swapped.stderr.contains("looks like the server's capture"), "\(swapped.stderr)")
    // Without a handshake nothing says which host opened the connection: merged as given,
    // every direction still right.
    try expectTruth("swapped, mid-connection", cut[1], cut[0], swapped: true)
    // The same capture twice, as one file and as a copy in another format.
    let copy = dir.file("\(tag)-copy.pcapng")
    #expect(try Tools.run(["editcap", "-F", "pcapng", base.client, copy]).status == 0)
    for (name, second) in [("same file twice", base.client), ("same packets twice", copy)] {
      let twice = try merge(
        "\(tag)-\(name)", base.client, second, dir, truth: 0,
        addresses: (base.clientAddress, base.serverAddress))
      rows.append("\(tag) \(name): \(twice)")
      #expect(twice.status == 65, "\(name): \(twice)")
      #expect(twice.stderr.contains("twice"), "\(twice.stderr)")
    }
    return rows
  }

  // MARK: - merging and checking

  /// Merges in memory (`--pair-in-memory`) and within the window, all outputs; returns the in-memory
  /// outcome after checking the windowed one against the same truth.
  func merge(
    _ name: String, _ client: String, _ server: String, _ dir: TemporaryDirectory, truth: Double,
    addresses: (client: String, server: String), skew: Double = 0, extra: [String] = []
  ) throws -> Outcome {
    let smcpair = try Tools.product("smcpair")
    var outcomes: [Outcome] = []
    for (mode, options) in [
      ("memory", ["--formats", "pcapng,jsonl,html,report", "--pair-in-memory"]),
      ("window", ["--formats", "pcapng,jsonl,html,report"]),
    ] {
      let out = dir.file("\(name)-\(mode)".replacingOccurrences(of: " ", with: "_"))
      let result = try Tools.run([smcpair, "merge", client, server, "--out", out] + options + extra)
      guard result.status != 65, result.status != 1 else {
        outcomes.append(
          Outcome(
            status: result.status, verdict: "refused", truth: truth, violations: 0, directed: 0,
            undirected: 0,
            wrong: 0, stderr: result.stderr))
        continue
      }
      let alignment = try json(out + "/alignment.json")
      let verdict = alignment["verdict"] as? String ?? "?"
      let lower = alignment["offset_lower_ns"] as? Double
      let upper = alignment["offset_upper_ns"] as? Double
      if verdict == "bounded" || verdict == "one-sided" {
        // Bounds hold the truth (to a nanosecond of timestamp rounding).
        #expect((lower ?? -.infinity) <= truth + 1, "\(name) \(mode): \(alignment)")
        #expect(truth - 1 <= (upper ?? .infinity), "\(name) \(mode): \(alignment)")
        if skew != 0, verdict == "bounded" {
          let skewLower = try #require(alignment["skew_lower_ppm"] as? Double)
          let skewUpper = try #require(alignment["skew_upper_ppm"] as? Double)
          #expect(skewLower <= skew + 0.01 && skew - 0.01 <= skewUpper, "\(name) \(mode): \(alignment)")
        }
      }
      let (right, wrong, none) = try directions(out + "/merged.pcapng", addresses)
      outcomes.append(
        Outcome(
          status: result.status, verdict: verdict, lower: lower, upper: upper, truth: truth,
          violations: alignment["causality_violations"] as? Int ?? -1, directed: right, undirected: none,
          wrong: wrong, stderr: result.stderr, pairs: alignment["pairs"] as? [String: Int] ?? [:]))
    }
    #expect(
      outcomes[0].status == outcomes[1].status, "\(name): in memory \(outcomes[0]), windowed \(outcomes[1])")
    #expect(outcomes[1].violations == 0 && outcomes[1].wrong == 0, "\(name) windowed: \(outcomes[1])")
    return outcomes[0]
  }

  /// Counts the packets of merged.pcapng whose direction flag is right, wrong, or absent,
  /// judged by the side that captured them (interface `client:…` or `server:…`) and the
  /// traffic addresses of the two hosts.
  func directions(_ merged: String, _ addresses: (client: String, server: String)) throws -> (Int, Int, Int) {
    let rows = try Tools.run([
      try Tools.require("tshark"), "-r", merged, "-T", "fields", "-E", "separator=/t", "-e",
      "frame.interface_name",
      "-e", "ip.src", "-e", "ip.dst", "-e", "frame.packet_flags_direction",
    ])
    #expect(rows.status == 0, "\(rows.stderr)")
    var (right, wrong, none) = (0, 0, 0)
    for line in rows.stdout.split(separator: "\n") {
      let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
      guard fields.count == 4 else { continue }
      let side = fields[0].hasPrefix("client") ? addresses.client : addresses.server
      let other = side == addresses.client ? addresses.server : addresses.client
      let expected: Int
      if fields[1] == side && fields[2] == other {
        expected = 2
      } else if fields[1] == other && fields[2] == side {
        expected = 1
      } else {
        continue  // not between the two hosts
      }
      switch Int(fields[3].replacingOccurrences(of: "0x", with: ""), radix: 16) ?? 0 {
      case 0: none += 1
      case expected: right += 1
      default: wrong += 1
      }
    }
    return (right, wrong, none)
  }

  // MARK: - making the captures

  /// The emulator's SMC-R conversation both ways, captured by tcpdump on 'any' (Linux cooked:
  /// the kernel's packet type records the NIC packets' directions).
  func captureEmulator(_ lab: TestLab, _ dir: TemporaryDirectory) throws -> Captures {
    try captureBothHosts(lab, dir, scenario: "both", extra: ["--messages", "40"], nanosecond: true)
    let hosts = lab.status.hosts
    let renamed = ["client", "server"].map { dir.file("emulator-\($0).pcap") }
    for (host, file) in zip(hosts, renamed) {
      try FileManager.default.moveItem(atPath: dir.file(host.name) + ".pcap", toPath: file)
    }
    return Captures(
      label: "emulator", client: renamed[0], server: renamed[1], clientAddress: hosts[0].trafficAddress,
      serverAddress: hosts[1].trafficAddress)
  }

  /// A real iperf3 run captured by tcpdump on the NIC (Ethernet: no direction recorded).
  func captureIperf3(_ lab: TestLab, _ dir: TemporaryDirectory) throws -> Captures {
    let tcpdump = try Tools.require("tcpdump")
    let iperf3 = try Tools.require("iperf3")
    let hosts = lab.status.hosts
    let server = try lab.start(1, [iperf3, "-s", "-1", "-p", "5201"], log: dir.file("iperf-server"))
    var captures: [BackgroundProcess] = []
    let files = ["client", "server"].map { dir.file("iperf-\($0).pcap") }
    for (index, file) in files.enumerated() {
      captures.append(
        try lab.start(
          index,
          [
            tcpdump, "-i", hosts[index].trafficInterface, "-s", "128", "-B", "65536", "--immediate-mode",
            "-U",
            "-n", "--time-stamp-precision", "nano", "-w", file, "tcp port 5201",
          ],
          log: file))
      for _ in 0..<300
      where !((try? String(contentsOfFile: file + ".err", encoding: .utf8)) ?? "").contains("listening") {
        usleep(10_000)
      }
    }
    usleep(200_000)
    let client = try lab.run(
      0, [iperf3, "-c", hosts[1].trafficAddress, "-p", "5201", "-t", "1", "-b", "50M"])
    #expect(client.status == 0, "\(client.stderr)")
    _ = server.wait(seconds: 10)
    waitUntilFilesStopGrowing(files)
    for capture in captures { capture.stop() }
    return Captures(
      label: "iperf3", client: files[0], server: files[1], clientAddress: hosts[0].trafficAddress,
      serverAddress: hosts[1].trafficAddress)
  }

  /// Frame number of the last SYN or CLC message in `file` (0: none). By the CLC eyecatcher:
  /// tshark's `smc` dissector needs the SYN to recognise an Accept or Confirm.
  func lastHandshakeFrame(_ file: String) throws -> Int {
    let result = try Tools.run([
      try Tools.require("tshark"), "-r", file, "-Y", "tcp.flags.syn == 1 || tcp.payload contains e2:d4:c3:d9",
      "-T", "fields", "-e", "frame.number",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    return result.stdout.split(separator: "\n").compactMap { Int($0) }.max() ?? 0
  }

  /// A copy of `file` with its dump records (UDP) or, without any, the packets from the
  /// server port written after the rest: runs out of time order, as per-interface writing makes.
  func outOfOrder(_ file: String, _ dir: TemporaryDirectory) throws -> String {
    let tshark = try Tools.require("tshark")
    let name = (file as NSString).lastPathComponent
    let udp = try Tools.run([tshark, "-r", file, "-Y", "udp", "-T", "fields", "-e", "frame.number"])
    let split = udp.stdout.isEmpty ? "tcp.srcport == 5201" : "udp"
    let parts = [dir.file(name + ".a.pcapng"), dir.file(name + ".b.pcapng")]
    #expect(try Tools.run([tshark, "-r", file, "-Y", split, "-w", parts[0]]).status == 0)
    #expect(try Tools.run([tshark, "-r", file, "-Y", "!(\(split))", "-w", parts[1]]).status == 0)
    let out = dir.file(name + ".disordered.pcapng")
    #expect(try Tools.run(["mergecap", "-a", "-w", out] + parts).status == 0)
    let order = try Tools.run(["capinfos", "-o", out])
    #expect(order.stdout.contains("False"), "the copy is out of time order: \(order.stdout)")
    return out
  }

  /// Writes `file` (pcap) with every time t as t + offset + ppm·(t − t0), nanoseconds;
  /// returns t0 (the file's first time).
  func skew(_ file: String, to out: String, offset: Int, ppm: Double) throws -> Int64 {
    let script = """
      import struct, sys
      src, dst, off, ppm = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
      d = open(src, 'rb').read()
      magic = struct.unpack('<I', d[:4])[0]
      assert magic in (0xa1b23c4d, 0xa1b2c3d4), hex(magic)
      scale = 1 if magic == 0xa1b23c4d else 1000
      out = bytearray(d[:24]); out[0:4] = struct.pack('<I', 0xa1b23c4d)
      i, t0 = 24, None
      while i + 16 <= len(d):
          s, f, cl, ol = struct.unpack('<IIII', d[i:i + 16])
          t = s * 10**9 + f * scale
          t0 = t if t0 is None else t0
          t2 = t + off + round(ppm * 1e-6 * (t - t0))
          out += struct.pack('<IIII', t2 // 10**9, t2 % 10**9, cl, ol) + d[i + 16:i + 16 + cl]
          i += 16 + cl
      open(dst, 'wb').write(out)
      print(t0)
      """
    let result = try Tools.run([try Tools.require("python3"), "-c", script, file, out, "\(offset)", "\(ppm)"])
    #expect(result.status == 0, "\(result.stderr)")
    return try #require(Int64(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
  }

  /// Time of the first packet of a pcap, nanoseconds.
  func firstTime(_ file: String) throws -> Int64 {
    let result = try Tools.run([
      try Tools.require("tshark"), "-r", file, "-c", "1", "-T", "fields", "-e", "frame.time_epoch",
    ])
    let text = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    let parts = text.split(separator: ".")
    let seconds = try #require(Int64(parts[0]))
    let fraction = parts.count > 1 ? String(parts[1]).padding(toLength: 9, withPad: "0", startingAt: 0) : "0"
    return seconds * 1_000_000_000 + (Int64(fraction) ?? 0)
  }
}
