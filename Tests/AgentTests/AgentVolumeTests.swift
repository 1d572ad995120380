import AgentProtocol
import CaptureFiles
import Foundation
import TestSupport
import Testing

/// `smc_type`, `smc_mode` and `data_snaplen` on a real capture: the agent in a lab host, the
/// emulator's SMC-R conversation (20 ping-pong messages of 1000 bytes: 40 data records and 42
/// CDC records on the client's dump device when nothing is left out).
@Suite(.serialized) struct AgentVolume {
  /// One capture of the emulator's conversation with `extra` plan fields: the file, the final
  /// status, the interfaces `prepare` announced.
  func capture(_ side: AgentInLab, _ session: String, _ extra: [(String, JSONValue)]) throws -> (
    path: String, status: StatusReply, interfaces: [String]
  ) {
    let prepared = try #require(side.agent.request(.prepare, side.plan(session, extra: extra)))
    #expect(prepared.ok, "\(prepared.line)")
    #expect(side.agent.request(.start)?.ok == true)
    try side.traffic(messages: 20)
    usleep(300_000)
    #expect(side.agent.request(.stop)?["state"]?.string == "stopped")
    let finalized = try #require(side.agent.request(.finalize))
    #expect(finalized.ok, "\(finalized.line)")
    let reply = try finalized.reply(FinalizeReply.self)
    let path = try #require(reply.files.first?.path)
    return (path, reply.status, try PrepareReply(.object(prepared.fields)).interfaces)
  }

  /// The dump records of a capture file: (is CDC by the lab's type byte, captured, original).
  func dumpRecords(_ path: String, device: String) throws -> [(cdc: Bool, captured: Int, original: Int)] {
    let reader = try CaptureFileReader(path: path)
    var out: [(Bool, Int, Int)] = []
    while let packet = try reader.next() {
      guard reader.interfaces[packet.interface].name == device else { continue }
      // Ethernet 14 + IPv4 20 + UDP 8, then the lab's header (type byte at 7, CDC = 2).
      out.append((packet.data[42 + 7] == 2, packet.data.count, packet.originalLength))
    }
    return out
  }

  /// Event kinds `smcpair decode --json` finds in the file.
  func decodedKinds(_ lab: TestLab, _ path: String) throws -> [String: Int] {
    let decoded = try Tools.run([lab.smcpair, "decode", "--json", path])
    #expect(decoded.status == 0, "\(decoded.stderr)")
    var kinds: [String: Int] = [:]
    for line in decoded.stdout.split(separator: "\n") {
      guard let kind = try JSONValue.parse(String(line))["kind"]?.string else { continue }
      kinds[kind, default: 0] += 1
    }
    return kinds
  }

  @Test func cdcKeepsOnlyCDCRecordsAndRawOnlyData() throws {
    let lab = try TestLab(hosts: 2, tag: "vt")
    let device = lab.status.hosts[0].dump_device
    let side = try AgentInLab(lab: lab)

    let cdc = try capture(side, "cdc", [("smc_type", .string("cdc"))])
    let cdcRecords = try dumpRecords(cdc.path, device: device)
    #expect(cdcRecords.count == 42 && cdcRecords.allSatisfy(\.cdc), "\(cdcRecords.count) records")
    let kinds = try decodedKinds(lab, cdc.path)
    #expect(kinds["cdc"] == 42 && kinds["data"] == nil, "\(kinds)")
    #expect(kinds["clc", default: 0] > 0, "the NIC is still captured: \(kinds)")
    let counts = try #require(cdc.status.interfaces.first { $0.name == device }?.dumpRecords)
    #expect(counts.leftOutData == 40 && counts.cdc == 42 && counts.unclassified == 0, "\(counts)")
    #expect(counts.calibration.contains("type byte at 7 (CDC = 2)"), "\(counts.calibration)")
    #expect(cdc.status.interfaces.first { $0.name == "eth0" }?.dumpRecords == nil)

    let raw = try capture(side, "raw", [("smc_type", .string("raw"))])
    let rawRecords = try dumpRecords(raw.path, device: device)
    #expect(rawRecords.count == 40 && rawRecords.allSatisfy { !$0.cdc }, "\(rawRecords.count) records")
    let rawCounts = try #require(raw.status.interfaces.first { $0.name == device }?.dumpRecords)
    #expect(rawCounts.leftOutCDC == 42 && rawCounts.data == 40, "\(rawCounts)")
    side.agent.closeInput()
    #expect(side.agent.wait(seconds: 10) == 0)
  }

  @Test func smcdModeKeepsNoSMCRRecordAndNoNIC() throws {
    let lab = try TestLab(hosts: 2, tag: "vm")
    let device = lab.status.hosts[0].dump_device
    let side = try AgentInLab(lab: lab)
    let smcd = try capture(side, "smcd", [("smc_mode", .string("smcd"))])
    #expect(smcd.interfaces == [device])
    #expect(try packetsPerInterface(smcd.path).isEmpty)
    let counts = try #require(smcd.status.interfaces.first?.dumpRecords)
    #expect(counts.leftOutMode == 82 && counts.unclassified == 0, "\(counts)")
    // `smc`: the dump device alone, every record.
    let smc = try capture(side, "smc", [("smc_mode", .string("smc"))])
    #expect(smc.interfaces == [device])
    #expect(try packetsPerInterface(smc.path) == [device: 82])
    // Without a dump device (this kernel has none, and no stand-in is named) there is nothing
    // to capture: refused, not an empty capture.
    let refused = side.agent.request(
      .prepare,
      [
        ("session", .string("nodump")), ("interfaces", .array([.string("eth0")])),
        ("smc_dump", .string("auto")), ("smc_mode", .string("smc")),
      ])
    #expect(refused?.error?.code == .smcDumpUnsupported, "\(refused?.line ?? "")")
    #expect(refused?.error?.message.contains("smc_mode 'smc' captures only the SMC dump device") == true)
    side.agent.closeInput()
    #expect(side.agent.wait(seconds: 10) == 0)
  }

  @Test func dataSnaplenCutsDataRecordsAndKeepsTheirLength() throws {
    let lab = try TestLab(hosts: 2, tag: "vs")
    let device = lab.status.hosts[0].dump_device
    let side = try AgentInLab(lab: lab)
    let cut = try capture(side, "cut", [("data_snaplen", .int(64))])
    let records = try dumpRecords(cut.path, device: device)
    #expect(records.count == 82)
    for record in records {
      if record.cdc {
        #expect(record.captured == record.original && record.original == 42 + 16 + 48)
      } else {
        #expect(record.captured == 42 + 16 + 64 && record.original == 42 + 16 + 1000, "\(record)")
      }
    }
    let counts = try #require(cut.status.interfaces.first { $0.name == device }?.dumpRecords)
    #expect(counts.cut == 40 && counts.cdc == 42 && counts.leftOut == 0, "\(counts)")
    // tshark reads the cut records with their original lengths.
    let tshark = try Tools.run([
      try Tools.require("tshark"), "-r", cut.path, "-Y", "frame.interface_name == \"\(device)\"", "-T",
      "fields", "-e", "frame.cap_len", "-e", "frame.len",
    ])
    #expect(tshark.status == 0, "\(tshark.stderr)")
    let lengths = Set(tshark.stdout.split(separator: "\n").map(String.init))
    #expect(lengths == ["122\t1058", "106\t106"], "\(lengths)")
    // decode still sees every data record whole in length.
    let decoded = try Tools.run([lab.smcpair, "decode", cut.path])
    #expect(decoded.stdout.contains("CDC 42, data 40 records / 40000 bytes"), "\(decoded.stdout)")
    side.agent.closeInput()
    #expect(side.agent.wait(seconds: 10) == 0)
  }

  /// A measurement for docs/capture.md ("Volume control"), not a threshold: the emulator's
  /// bulk scenario (`BULK_MESSAGES` messages of 16 KiB, default 800) captured with each
  /// setting; bytes written per second of workload, per interface. Asserts only that leaving
  /// out or cutting data records writes fewer bytes than keeping them.
  @Test func bulkBytesCapturedPerSecond() throws {
    let lab = try TestLab(hosts: 2, tag: "vb")
    let device = lab.status.hosts[0].dump_device
    let side = try AgentInLab(lab: lab)
    let messages = Int(ProcessInfo.processInfo.environment["BULK_MESSAGES"] ?? "") ?? 800
    let settings: [(String, [(String, JSONValue)])] = [
      ("all", []), ("--smc-type cdc", [("smc_type", .string("cdc"))]),
      ("--data-snaplen 64", [("data_snaplen", .int(64))]),
    ]
    var rates: [String: Double] = [:]
    for (index, (name, extra)) in settings.enumerated() {
      #expect(side.agent.request(.prepare, side.plan("bulk\(index)", extra: extra))?.ok == true)
      #expect(side.agent.request(.start)?.ok == true)
      let started = Date()
      try side.traffic("bulk", messages: messages, size: 16384)
      let seconds = Date().timeIntervalSince(started)
      usleep(300_000)
      #expect(side.agent.request(.stop)?.ok == true)
      let finalized = try #require(side.agent.request(.finalize))
      let status = try finalized.reply(FinalizeReply.self).status
      let dump = try #require(status.interfaces.first { $0.name == device })
      let nic = status.interfaces.first { $0.name == "eth0" }?.bytes ?? 0
      rates[name] = Double(status.bytes) / seconds
      let left =
        dump.dumpRecords.map { " left out \($0.leftOut), cut \($0.cut), unclassified \($0.unclassified)" }
        ?? ""
      print(
        "volume: \(name): kernel drops \(status.drops), libpcap received \(dump.received) on the dump device")
      print(
        String(
          format:
            "volume: %@: %.2f s workload, %.1f MiB written (dump %.1f MiB in %llu records, NIC %.1f MiB): %.1f MiB/s%@",
          name, seconds, Double(status.bytes) / 1_048_576, Double(dump.bytes) / 1_048_576, dump.written,
          Double(nic) / 1_048_576, Double(status.bytes) / seconds / 1_048_576, left))
    }
    #expect(rates["--smc-type cdc", default: .infinity] < rates["all", default: 0])
    #expect(rates["--data-snaplen 64", default: .infinity] < rates["all", default: 0])
    side.agent.closeInput()
    #expect(side.agent.wait(seconds: 10) == 0)
  }
}
