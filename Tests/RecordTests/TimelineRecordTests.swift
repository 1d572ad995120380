import Alignment
import Foundation
import MergePipeline
import Rendering
import SMCWire
import Testing

/// timeline.jsonl and alignment.json as records: the byte writer writes what the encoder
/// would, every kind of line reads back, older files read, damaged lines say where.
@Suite struct TimelineRecords {
  static let pairs = [
    TimelinePair(
      clientFrame: 1, serverFrame: 3, kind: .tcp, direction: .clientToServer, src: "10.0.0.1:32768",
      dst: "10.0.0.2:8000", sendNanoseconds: 1_764_000_000_000_000_000,
      receiveNanoseconds: 1_764_000_000_000_025_000,
      delayUncertaintyNanoseconds: 25013),
    TimelinePair(
      clientFrame: 7, serverFrame: 2, kind: .cdc, direction: .serverToClient, src: "[fd00::2]:8000",
      dst: "[fd00::1]:41000", sendNanoseconds: 50, receiveNanoseconds: 20, delayUncertaintyNanoseconds: nil),
  ]
  static let finding = TimelineFinding(
    finding: .declined, side: .side(.server), connection: "10.0.0.1:32772 -> 10.0.0.2:8000",
    message: "CLC Decline \"NOSMCRDEV\"", timeNanoseconds: 99)

  @Test func pairLinesAreTheEncodersBytes() throws {
    var writer = TimelineWriter()
    for pair in Self.pairs {
      writer.removeAll()
      writer.append(pair)
      let encoded = try RecordCoding.encoder().encode(pair) + Data("\n".utf8)
      #expect(String(decoding: writer.bytes, as: UTF8.self) == String(decoding: encoded, as: UTF8.self))
    }
    #expect(Self.pairs[1].delayNanoseconds == -30, "delay = receive - send, negative when the clocks say so")
  }

  @Test func everyKindOfLineReadsBack() throws {
    var writer = TimelineWriter()
    try writer.append(TimelineHeader(pairs: 2, findings: 1))
    for pair in Self.pairs { writer.append(pair) }
    try writer.append(Self.finding)
    try writer.append(
      TimelineFinding(
        finding: .delayOutlier, side: .both, connection: "c", message: "m", timeNanoseconds: nil))
    let text = String(decoding: writer.bytes, as: UTF8.self)
    let lines = text.split(separator: "\n")
    #expect(lines.first == #"{"findings":1,"format":"smcpair-timeline","pairs":2,"version":1}"#)
    #expect(lines.last == #"{"connection":"c","finding":"delay-outlier","message":"m","side":"both"}"#)
    let records = try lines.enumerated().map { try TimelineRecord.read($1, path: "t.jsonl", line: $0 + 1) }
    #expect(
      records == [
        .header(TimelineHeader(pairs: 2, findings: 1)), .pair(Self.pairs[0]), .pair(Self.pairs[1]),
        .finding(Self.finding),
        .finding(
          TimelineFinding(
            finding: .delayOutlier, side: .both, connection: "c", message: "m", timeNanoseconds: nil)),
      ])
  }

  /// Lines as smcpair wrote them before the header existed.
  @Test func aFileWithoutHeaderReads() throws {
    let old = [
      #"{"client_frame":1,"delay_ns":25000,"delay_uncertainty_ns":25013,"direction":"client->server","dst":"10.0.0.2:8000","kind":"tcp","receive_ns":1764000000000025000,"send_ns":1764000000000000000,"server_frame":1,"src":"10.0.0.1:32768"}"#,
      #"{"connection":"10.0.0.1:32768 -> 10.0.0.2:8000","finding":"capture-drops","message":"42 packets were dropped","side":"server","time_ns":5}"#,
    ]
    let records = try old.enumerated().map { try TimelineRecord.read(Substring($1), path: "t", line: $0 + 1) }
    guard case .pair(let pair) = records[0], case .finding(let finding) = records[1] else {
      Issue.record("\(records)")
      return
    }
    #expect(pair.direction.sender == .client && pair.kind == .tcp && pair.serverFrame == 1)
    #expect(pair.event == nil, "no decode fields on a line written before them")
    #expect(
      finding.finding == .captureDrops && finding.side == .side(.server) && finding.timeNanoseconds == 5)
  }

  @Test func aDamagedLineSaysWhereAndWhat() {
    #expect {
      try TimelineRecord.read(
        #"{"client_frame":1,"delay_ns":5,"direction":"client->server","dst":"b","kind":"tcp","receive_ns":5,"server_frame":1,"src":"a"}"#,
        path: "out/timeline.jsonl", line: 7)
    } throws: { error in
      "\(error)" == "out/timeline.jsonl line 7: field 'send_ns': missing"
    }
    #expect {
      try TimelineRecord.read(
        #"{"client_frame":1,"delay_ns":5,"direction":"up","dst":"b","kind":"tcp","receive_ns":5,"send_ns":0,"server_frame":1,"src":"a"}"#,
        path: "t", line: 3)
    } throws: { error in
      (error as? RecordError)?.field == "direction"
    }
    #expect {
      try TimelineRecord.read(
        #"{"connection":"c","finding":"no-such-finding","message":"m","side":"client"}"#, path: "t", line: 2)
    } throws: { error in
      (error as? RecordError)?.field == "finding"
    }
    #expect {
      try TimelineRecord.read(
        #"{"findings":0,"format":"smcpair-timeline","pairs":0,"version":2}"#, path: "t", line: 1)
    } throws: { error in
      (error as? RecordError)?.description.contains("written by a newer smcpair") == true
    }
  }

  /// Pairs that carry what their client copy is: the byte writer still writes what the encoder
  /// would (the description's members sorted among the pairing fields), and the lines read back.
  static var describedPairs: [TimelinePair] {
    var syn = EventDescription(kind: .tcp)
    syn.tcpFlags = [.syn, .ack]
    syn.seq = 4_214_379_870
    syn.ack = 1_703_865_448
    syn.seqRelative = 0
    syn.ackRelative = 1
    syn.payloadLength = 0
    syn.smcOption = true
    syn.tcpRetransmission = true
    var decline = EventDescription(kind: .clc)
    decline.clcType = "decline"
    decline.clcVersion = 1
    decline.clcPath = "R"
    decline.eyecatcher = "SMCR"
    decline.length = 28
    decline.firstContact = false
    decline.peerID = "00000bff90150280"
    decline.declineCode = 0x0303_0002
    decline.outOfSync = false
    decline.retransmission = true
    decline.note = "a \"quoted\" note\twith a tab"
    var cdc = EventDescription(kind: .cdc)
    cdc.mode = "R"
    cdc.seqno = 5
    cdc.token = 897_465_769
    cdc.producer = CDCCursor(wrap: 0, count: 1200)
    cdc.consumer = CDCCursor(wrap: 1, count: 7)
    cdc.cdcFlags = [.writeBlocked, .urgentPending]
    cdc.connectionState = [.peerClosed]
    var data = EventDescription(kind: .data)
    data.mode = "D"
    data.length = 1200
    data.rangeStart = CDCCursor(wrap: 0, count: 0)
    data.rangeEnd = CDCCursor(wrap: 0, count: 1200)
    return [(PairKind.tcp, syn), (.clc, decline), (.cdc, cdc), (.data, data)].enumerated().map {
      index, item in
      TimelinePair(
        clientFrame: index + 1, serverFrame: index + 2, kind: item.0, direction: .serverToClient,
        src: "10.0.0.2:8000", dst: "10.0.0.1:32768", sendNanoseconds: 10, receiveNanoseconds: 35,
        delayUncertaintyNanoseconds: index == 0 ? nil : 5, event: item.1)
    }
  }

  @Test func describedPairLinesAreTheEncodersBytesAndReadBack() throws {
    var writer = TimelineWriter()
    for (index, pair) in Self.describedPairs.enumerated() {
      writer.removeAll()
      writer.append(pair)
      let encoded = try RecordCoding.encoder().encode(pair) + Data("\n".utf8)
      #expect(String(decoding: writer.bytes, as: UTF8.self) == String(decoding: encoded, as: UTF8.self))
      let line = String(decoding: writer.bytes.dropLast(), as: UTF8.self)
      #expect(try TimelineRecord.read(Substring(line), path: "t", line: index + 1) == .pair(pair))
    }
    writer.removeAll()
    writer.append(Self.describedPairs[2])
    let cdcLine = String(decoding: writer.bytes, as: UTF8.self)
    #expect(cdcLine.contains(#""flags":["write_blocked","urgent_pending"]"#))
    #expect(cdcLine.contains(#""prod_count":1200,"prod_wrap":0"#))
    writer.removeAll()
    writer.append(Self.describedPairs[1])
    let declineLine = String(decoding: writer.bytes, as: UTF8.self)
    #expect(
      declineLine.contains(#""decline_code":"0x03030002","decline_reason":"NOSMCRDEV","decline_text":"#))
    #expect(
      Self.describedPairs.map { $0.event?.label ?? "" }[2]
        == "CDC #5 prod 0:1200 cons 1:7 [write-blocked, urgent-pending, peer-closed]")
  }

  @Test func seenOnTakesFindingSidesOnly() {
    #expect(SeenOn("client") == .side(.client) && SeenOn("both") == .both && SeenOn("nobody") == nil)
  }
}

@Suite struct MergeFormatSets {
  @Test func namesParse() throws {
    #expect(try MergeFormats(parsing: "pcapng,jsonl") == [.pcapng, .jsonl])
    #expect(try MergeFormats(parsing: "pcapng,jsonl,html,report") == .all)
    #expect(try MergeFormats(parsing: "") == [])
    #expect {
      try MergeFormats(parsing: "pcapng,csv")
    } throws: { error in
      "\(error)" == "unknown format 'csv'; choose from pcapng, jsonl, html, report"
    }
  }
}

@Suite struct AlignmentRecords {
  /// Unbounded numbers are explicit nulls (every key is there), and the record reads back.
  @Test func unboundedIsNullAndTheRecordReadsBack() throws {
    let text = """
      {"causality_violations":0,"client_addresses":[],"client_file":"c","client_name":"h1","client_packets":3,
       "direction":[{"client_addresses":[],"evidence":null,"explanation":"nothing decides","pairs":2,"server_addresses":[]}],
       "offset_lower_ns":null,"offset_ns":0,"offset_upper_ns":null,"pairs":{"cdc":0,"clc":0,"data":0,"tcp":2},
       "reference_ns":0,"segments":[{"end_ns":null,"offset_lower_ns":null,"offset_ns":0,"offset_upper_ns":null,
       "pairs":0,"skew_ppm":0,"start_ns":null}],"server_addresses":[],"server_file":"s","server_name":"h2",
       "server_packets":3,"skew_lower_ppm":null,"skew_ppm":0,"skew_upper_ppm":null,"undirected_pairs":2,
       "verdict":"cannot-tell","warnings":[]}
      """
    let record = try RecordCoding.decode(AlignmentRecord.self, from: Data(text.utf8), path: "alignment.json")
    #expect(
      record.verdict == .cannotTell && record.offsetUpperNanoseconds == nil && record.clientName == "h1")
    #expect(record.direction.first?.evidence == nil && record.segments.first?.startNanoseconds == nil)
    #expect(record.pairingWindow == nil)
    let written = RecordCoding.text(record)
    #expect(written.contains(#""offset_upper_ns":null"#) && written.contains(#""evidence":null"#))
    #expect(!written.contains("pairing_window"))
    #expect(try RecordCoding.decode(AlignmentRecord.self, from: Data(written.utf8), path: "a") == record)
  }
}
