import AgentProtocol
import CaptureFiles
import Foundation
import TestSupport
import Testing

/// The agent in a lab host, driven over its stdin/stdout like the coordinator will.
struct AgentInLab {
  let lab: TestLab
  let root: TemporaryDirectory
  let agent: AgentDriver

  init(lab: TestLab, host: Int = 0, root: TemporaryDirectory? = nil, user: [String] = []) throws {
    self.lab = lab
    self.root = try root ?? TemporaryDirectory("smcpair-agent")
    agent = try AgentDriver(
      ["/usr/sbin/ip", "netns", "exec", lab.status.hosts[host].namespace] + user
        + [try Tools.product("smcpair-agent"), "--root", self.root.path])
  }

  func plan(
    _ session: String, filter: String = "port 7000", stop: [(String, JSONValue)] = [],
    extra: [(String, JSONValue)] = []
  ) -> [(String, JSONValue)] {
    [
      ("session", .string(session)), ("interfaces", .array([.string("eth0")])), ("filter", .string(filter)),
      ("smc_dump", .string(lab.status.hosts[0].dump_device)), ("stop", .object(stop)),
    ] + extra
  }

  /// Runs an emulated SMC conversation h1 -> h2 while the agent captures.
  func traffic(_ scenario: String = "pingpong", messages: Int = 20, size: Int = 1000) throws {
    let dir = try TemporaryDirectory("smcpair-traffic")
    let server = try lab.start(
      1, [lab.smcpair, "lab", "peer", "server", "--port", "7000"], log: dir.file("server"))
    let client = try lab.run(
      0,
      [
        lab.smcpair, "lab", "peer", "client", "--connect", "\(lab.status.hosts[1].address):7000",
        "--scenario", scenario,
        "--messages", "\(messages)", "--size", "\(size)",
      ])
    #expect(client.status == 0, "\(client.stderr)")
    _ = server.wait(seconds: 10)
  }
}

func packetsPerInterface(_ path: String) throws -> [String: Int] {
  let reader = try CaptureFileReader(path: path)
  var counts: [String: Int] = [:]
  while let packet = try reader.next() {
    counts[reader.interfaces[packet.interface].name ?? "?", default: 0] += 1
  }
  return counts
}

@Suite(.serialized) struct AgentCapture {
  @Test func captureMatchesTcpdumpAndTsharkReadsIt() throws {
    let lab = try TestLab(hosts: 2, tag: "g")
    let host = lab.status.hosts[0]
    let side = try AgentInLab(lab: lab)
    let hello = try #require(side.agent.request(.hello))
    #expect(hello.ok)
    #expect(hello["privileges"]?["sufficient"]?.bool == true)
    #expect(hello["interfaces"]?.array?.contains(.string(host.dump_device)) == true)
    #expect(hello["smc_dump"]?["supported"]?.bool == false)
    let prepared = try #require(side.agent.request(.prepare, side.plan("main")))
    #expect(prepared.ok, "\(prepared.line)")
    #expect(prepared["interfaces"] == .array([.string("eth0"), .string(host.dump_device)]))
    // tcpdump on the same interfaces with the same filter, as the reference.
    let dir = try TemporaryDirectory()
    let tcpdump = try Tools.require("tcpdump")
    var references: [BackgroundProcess] = []
    for device in ["eth0", host.dump_device] {
      let log = dir.file(device)
      // Immediate mode uses TPACKET_V2 slots of the snapshot length or the MTU: on the
      // stand-in (MTU 65535) the default 2 MiB buffer has 32 slots, fewer than one burst of
      // dump records from an emulator that sends without Nagle. Dump records fit in 9000 bytes.
      let snapshot = device == host.dump_device ? ["-s", "9000"] : []
      references.append(
        try lab.start(
          0,
          [tcpdump, "-i", device] + snapshot + [
            "--immediate-mode", "-U", "-n", "-w", log + ".pcap", "port 7000",
          ],
          log: log))
      for _ in 0..<300
      where !((try? String(contentsOfFile: log + ".err", encoding: .utf8)) ?? "").contains("listening") {
        usleep(10_000)
      }
    }
    let started = try #require(side.agent.request(.start))
    #expect(started.ok)
    try side.traffic(messages: 20)
    usleep(300_000)
    let status = try #require(side.agent.request(.status))
    #expect(status["state"]?.string == "capturing")
    let stopped = try #require(side.agent.request(.stop))
    #expect(stopped["state"]?.string == "stopped")
    // tcpdump loses what it has not read yet when stopped: wait until its files stop
    // growing (on a busy machine it can lag the agent by more than the pause above).
    waitUntilFilesStopGrowing([dir.file("eth0") + ".pcap", dir.file(host.dump_device) + ".pcap"])
    for reference in references { reference.stop() }
    let finalized = try #require(side.agent.request(.finalize))
    #expect(finalized.ok, "\(finalized.line)")
    let file = try #require(finalized["files"]?.array?.first)
    let path = try #require(file["path"]?.string)
    #expect(path.hasPrefix(side.root.path + "/sessions/main/"))
    // Checksum and size as sha256sum and stat see them; mode 0600 (payload inside).
    let sha = try Tools.run(["sha256sum", path]).stdout.split(separator: " ").first.map(String.init)
    #expect(file["sha256"]?.string == sha)
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    #expect(file["size"]?.int == (attributes[.size] as? NSNumber)?.int64Value)
    #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    // The same packets as tcpdump on each interface.
    let ours = try packetsPerInterface(path)
    let theirs = [
      "eth0": try packetsPerInterface(dir.file("eth0") + ".pcap")["?", default: 0],
      host.dump_device: try packetsPerInterface(dir.file(host.dump_device) + ".pcap")["?", default: 0],
    ]
    #expect(ours == theirs)
    #expect(ours[host.dump_device, default: 0] >= 40)
    // Statistics in the reply and in the file's ISBs.
    let interfaces = try #require(finalized["interfaces"]?.array)
    #expect(interfaces.map { $0["written"]?.int } == [Int64(ours["eth0"]!), Int64(ours[host.dump_device]!)])
    #expect(interfaces.allSatisfy { $0["dropped"]?.int == 0 })
    let reader = try CaptureFileReader(path: path)
    while try reader.next() != nil {}
    #expect(reader.interfaces.map(\.name) == ["eth0", host.dump_device])
    #expect(reader.interfaces.allSatisfy { $0.filter == "port 7000" && $0.statistics != nil })
    // tshark reads it, with both interfaces.
    let tshark = try Tools.run([
      try Tools.require("tshark"), "-r", path, "-T", "fields", "-e", "frame.interface_name",
    ])
    #expect(tshark.status == 0)
    let names = Set(tshark.stdout.split(separator: "\n").map(String.init))
    #expect(names == ["eth0", host.dump_device])
    // And smcpair decodes the SMC conversation in it.
    let decoded = try Tools.run([lab.smcpair, "decode", path])
    #expect(decoded.stdout.contains("SMC-R v1  CDC 42, data 40 records / 40000 bytes"), "\(decoded.stdout)")
    side.agent.closeInput()
    #expect(side.agent.wait(seconds: 10) == 0)
  }

  /// Both interfaces in one time order, and every packet's direction as the host saw it:
  /// on the NIC by the kernel's packet type, on the dump device by the record's addresses.
  @Test func fileIsInTimeOrderAndEveryPacketHasItsDirection() throws {
    let lab = try TestLab(hosts: 2, tag: "o")
    let host = lab.status.hosts[0]
    let peer = lab.status.hosts[1]
    let side = try AgentInLab(lab: lab)
    #expect(side.agent.request(.prepare, side.plan("ordered"))?.ok == true)
    #expect(side.agent.request(.start)?.ok == true)
    try side.traffic(messages: 30)
    #expect(side.agent.request(.stop)?["state"]?.string == "stopped")
    let finalized = try #require(side.agent.request(.finalize))
    #expect(finalized.ok, "\(finalized.line)")
    let path = try #require(finalized["files"]?.array?.first?["path"]?.string)
    let interfaces = try #require(finalized["interfaces"]?.array)
    #expect(interfaces.allSatisfy { $0["out_of_order"]?.int != nil })
    #expect(finalized["out_of_order"]?.int == 0, "\(finalized.line)")

    // capinfos: strict time order across the NIC and the dump device.
    let capinfos = try Tools.run([try Tools.require("capinfos"), "-o", "-M", path])
    #expect(capinfos.status == 0, "\(capinfos.stderr)")
    let order = capinfos.stdout.split(separator: "\n").first { $0.contains("Strict time order") }
    #expect(order?.hasSuffix("True") == true, "\(capinfos.stdout)")

    // tshark: the direction of every packet, with its addresses.
    let tshark = try Tools.run([
      try Tools.require("tshark"), "-r", path, "-T", "fields", "-E", "separator=|", "-e",
      "frame.interface_name",
      "-e", "frame.packet_flags_direction", "-e", "ip.src", "-e", "ip.dst",
    ])
    #expect(tshark.status == 0, "\(tshark.stderr)")
    var seen: [String: Int] = [:]
    for line in tshark.stdout.split(separator: "\n") {
      let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
      guard fields.count == 4 else {
        Issue.record("unexpected tshark line \(line)")
        continue
      }
      let (interface, direction, source, destination) = (fields[0], fields[1], fields[2], fields[3])
      let expected: String
      if source == host.address {
        expected = "outbound"
      } else if destination == host.address {
        expected = "inbound"
      } else {
        Issue.record("a packet neither from nor to the capturing host: \(line)")
        continue
      }
      // tshark prints the flag bits' value (0x00000001 inbound, 0x00000002 outbound).
      let value = direction.hasPrefix("0x") ? Int(direction.dropFirst(2), radix: 16) : Int(direction)
      let name = [1: "inbound", 2: "outbound"][value ?? 0] ?? "'\(direction)'"
      #expect(name == expected, "\(line)")
      #expect(source == peer.address || destination == peer.address, "\(line)")
      seen["\(interface) \(expected)", default: 0] += 1
    }
    // Traffic both ways on both interfaces (the emulator records sent and received messages).
    for key in [
      "eth0 outbound", "eth0 inbound", "\(host.dump_device) outbound", "\(host.dump_device) inbound",
    ] {
      #expect(seen[key, default: 0] > 0, "\(key): \(seen)")
    }
    // The count of packets out of time order is in the file too (an ISB comment).
    let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    #expect(bytes.range(of: Data("0 packets out of time order in this file".utf8)) != nil)
    side.agent.closeInput()
    #expect(side.agent.wait(seconds: 10) == 0)
  }

  @Test func stopsByDurationAndPacketCount() throws {
    let lab = try TestLab(hosts: 2, tag: "h")
    let side = try AgentInLab(lab: lab)
    #expect(side.agent.request(.prepare, side.plan("timed", stop: [("duration_s", .double(1))]))?.ok == true)
    #expect(side.agent.request(.start)?.ok == true)
    usleep(1_500_000)
    let status = side.agent.request(.status)
    #expect(status?["state"]?.string == "stopped")
    #expect(status?["stop_reason"]?.string == "duration reached")
    #expect(side.agent.request(.finalize)?.ok == true)
    #expect(side.agent.request(.prepare, side.plan("counted", stop: [("packets", .int(10))]))?.ok == true)
    #expect(side.agent.request(.start)?.ok == true)
    try side.traffic(messages: 20)
    usleep(300_000)
    let counted = side.agent.request(.status)
    #expect(counted?["state"]?.string == "stopped")
    #expect(counted?["stop_reason"]?.string == "packet count reached")
    #expect((counted?["packets"]?.int ?? 0) >= 10)
    // Bytes written per interface (protocol 2), read as the coordinator reads them: they add
    // up to the session's bytes, and the interfaces that wrote packets wrote bytes.
    let typed = try #require(try counted?.reply(StatusReply.self))
    #expect(typed.interfaces.reduce(0) { $0 + $1.bytes } == UInt64(typed.bytes), "\(typed.interfaces)")
    #expect(typed.interfaces.contains { $0.written > 0 })
    for interface in typed.interfaces {
      #expect((interface.written == 0) == (interface.bytes == 0), "\(interface)")
      #expect(interface.bytes >= interface.written * 42, "\(interface)")
    }
  }

  @Test func rotatesFilesBySize() throws {
    let lab = try TestLab(hosts: 2, tag: "r")
    let side = try AgentInLab(lab: lab)
    #expect(
      side.agent.request(.prepare, side.plan("rot", extra: [("rotate_bytes", .int(65536))]))?.ok == true)
    #expect(side.agent.request(.start)?.ok == true)
    try side.traffic("bulk", messages: 60, size: 4000)
    usleep(300_000)
    #expect(side.agent.request(.stop)?.ok == true)
    let finalized = try #require(side.agent.request(.finalize))
    let files = try #require(finalized["files"]?.array)
    #expect(files.count >= 3, "\(finalized.line)")
    var total = 0
    for file in files {
      let path = try #require(file["path"]?.string)
      // Each piece is a complete pcapng with both interfaces and its own statistics.
      let reader = try CaptureFileReader(path: path)
      while try reader.next() != nil { total += 1 }
      #expect(reader.interfaces.count == 2)
      #expect(reader.interfaces.allSatisfy { $0.statistics != nil })
    }
    #expect(Int64(total) == finalized["packets"]?.int)
  }

  @Test func signalFinalizesAndSIGKILLLeavesAReadableFile() throws {
    let lab = try TestLab(hosts: 2, tag: "k")
    let side = try AgentInLab(lab: lab)
    #expect(side.agent.request(.prepare, side.plan("term"))?.ok == true)
    #expect(side.agent.request(.start)?.ok == true)
    try side.traffic(messages: 5)
    usleep(300_000)
    side.agent.send(signal: SIGTERM)
    #expect(side.agent.wait(seconds: 10) == 0)
    let state = try JSONValue.parse(
      String(contentsOfFile: side.root.file("sessions/term/state.json"), encoding: .utf8))
    #expect(state["state"]?.string == "finalized")
    #expect(state["stop_reason"]?.string == "signal SIGTERM")
    #expect(
      try packetsPerInterface(side.root.file("sessions/term/capture-0001.pcapng")).values.reduce(0, +) > 10)

    let killed = try AgentInLab(lab: lab)
    #expect(killed.agent.request(.prepare, killed.plan("kill"))?.ok == true)
    #expect(killed.agent.request(.start)?.ok == true)
    try killed.traffic(messages: 10)
    usleep(500_000)  // past a flush
    killed.agent.send(signal: SIGKILL)
    killed.agent.wait(seconds: 10)
    // Every block reached the file whole: it reads to the end without damage.
    let counts = try packetsPerInterface(killed.root.file("sessions/kill/capture-0001.pcapng"))
    #expect(counts.values.reduce(0, +) > 20)
  }

  @Test func captureOutlivesItsControlConnectionAndAttachStopsIt() throws {
    let lab = try TestLab(hosts: 2, tag: "d")
    let side = try AgentInLab(lab: lab)
    #expect(
      side.agent.request(.prepare, side.plan("detached", stop: [("duration_s", .double(60))]))?.ok == true)
    #expect(side.agent.request(.start)?.ok == true)
    side.agent.closeInput()
    try side.traffic(messages: 10)
    #expect(side.agent.wait(seconds: 1) == nil, "the agent keeps capturing without its control connection")
    let agent = try Tools.product("smcpair-agent")
    let attach = [
      "ip", "netns", "exec", lab.status.hosts[0].namespace, agent, "--root", side.root.path, "attach",
      "detached",
    ]
    let requests =
      [
        AgentRequest(id: 1, type: .status).line, AgentRequest(id: 2, type: .stop).line,
        AgentRequest(id: 3, type: .finalize).line,
      ].joined(separator: "\n") + "\n"
    let result = try Tools.run(attach, stdin: Data(requests.utf8))
    let responses = result.stdout.split(separator: "\n").compactMap { try? AgentResponse.parse(String($0)) }
    #expect(responses.count == 3, "\(result.stdout) \(result.stderr)")
    #expect(responses.first?["state"]?.string == "capturing")
    #expect(responses.dropFirst().first?["stop_reason"]?.string == "stop requested")
    #expect(responses.last?["files"]?.array?.count == 1)
    #expect(side.agent.wait(seconds: 10) == 0, "the agent exits once finalized and alone")
    // With the agent gone, attach answers from the session folder.
    let offline = try Tools.run(attach, stdin: Data((AgentRequest(id: 4, type: .status).line + "\n").utf8))
    #expect(offline.stdout.contains("\"state\":\"finalized\""))
  }

  @Test func diskFullStopsCleanlyWithAReadableFile() throws {
    let lab = try TestLab(hosts: 2, tag: "f")
    let root = try TemporaryDirectory("smcpair-full")
    #expect(try Tools.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", root.path]).status == 0)
    defer { _ = try? Tools.run(["umount", root.path]) }
    let side = try AgentInLab(lab: lab, root: root)
    #expect(side.agent.request(.prepare, side.plan("full"))?.ok == true)
    #expect(side.agent.request(.start)?.ok == true)
    try side.traffic("bulk", messages: 100, size: 4000)
    usleep(500_000)
    let status = try #require(side.agent.request(.status))
    #expect(status["state"]?.string == "stopped")
    #expect(status["capture_error"]?["code"]?.string == "disk-full", "\(status.line)")
    #expect(status["capture_error"]?["message"]?.string?.contains("disk full") == true)
    let counts = try packetsPerInterface(root.file("sessions/full/capture-0001.pcapng"))
    #expect(counts.values.reduce(0, +) > 10)
    side.agent.closeInput()
    side.agent.wait(seconds: 10)
  }

  @Test func badRequestsGetErrorReplies() throws {
    let lab = try TestLab(hosts: 1, tag: "e")
    let side = try AgentInLab(lab: lab)
    side.agent.sendRaw("this is not json")
    #expect(side.agent.readResponse()?.error?.code == .malformed)
    side.agent.sendRaw(#"{"v":2,"id":2,"type":"teleport"}"#)
    #expect(side.agent.readResponse()?.error?.code == .unknownType)
    #expect(side.agent.request(.start)?.error?.code == .outOfOrder)
    #expect(side.agent.request(.finalize)?.error?.code == .outOfOrder)
    let badFilter = side.agent.request(.prepare, side.plan("f", filter: "port seventy"))
    #expect(badFilter?.error?.code == .badFilter)
    #expect(badFilter?.error?.message.contains("port seventy") == true)
    let noDevice = side.agent.request(
      .prepare, [("session", .string("n")), ("interfaces", .array([.string("nope0")]))])
    #expect(noDevice?.error?.code == .capture)
    #expect(noDevice?.error?.message.contains("nope0") == true)
    let required = side.agent.request(
      .prepare,
      [
        ("session", .string("r")), ("interfaces", .array([.string("eth0")])),
        ("smc_dump", .string("required")),
      ])
    #expect(required?.error?.code == .smcDumpUnsupported)
    #expect(required?.error?.message.contains("unsupported on this kernel") == true)
    // A long line is rejected, and the agent still answers afterwards.
    side.agent.sendRaw(String(repeating: "x", count: 2 << 20))
    #expect(side.agent.readResponse()?.error?.code == .malformed)
    #expect(side.agent.request(.clock)?["realtime_ns"]?.int != nil)
    side.agent.closeInput()
    #expect(side.agent.wait(seconds: 10) == 0)
  }

  @Test func withoutPrivilegesItSaysSo() throws {
    let lab = try TestLab(hosts: 1, tag: "p")
    let root = try TemporaryDirectory("smcpair-nobody")
    chmod(root.path, 0o777)
    let side = try AgentInLab(
      lab: lab, root: root,
      user: [
        "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
        "--bounding-set=-all",
      ])
    let hello = try #require(side.agent.request(.hello))
    #expect(hello["privileges"]?["sufficient"]?.bool == false)
    let prepare = side.agent.request(.prepare, side.plan("np"))
    #expect(prepare?.error?.code == .privileges)
    #expect(prepare?.error?.message.contains("CAP_NET_RAW") == true)
  }
}
