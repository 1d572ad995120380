import Alignment
import CaptureFiles
import Foundation
import SMCWire

/// Writes the outputs of `smcpair merge`: merged.pcapng and alignment.json (always).
public enum MergeOutputs {
  /// One packet of either side, with its time on the reference clock.
  struct Entry {
    var aligned: Double
    var side: Int  // 0 client, 1 server
    var frame: Int
  }

  /// `alignment.json`: offset (server − client) and bounds in ns at the start of the client
  /// capture, skew in ppm, pairs per kind, causality violations, verdict, segments, warnings.
  public static func alignmentJSON(
    _ a: Alignment, client: String, server: String, clientName: String = "client",
    serverName: String = "server"
  ) -> String {
    func number(_ v: Double) -> Any { v.isFinite ? (v * 1000).rounded() / 1000 : NSNull() }
    var pairs: [String: Int] = [:]
    for kind in PairKind.allCases { pairs[kind.rawValue] = a.pairsByKind[kind, default: 0] }
    var object: [String: Any] = [
      "client_file": client, "server_file": server, "client_name": clientName, "server_name": serverName,
      "offset_ns": number(a.model.offsetNanoseconds), "offset_lower_ns": number(a.model.offsetLower),
      "offset_upper_ns": number(a.model.offsetUpper), "skew_ppm": number(a.model.skewPPM),
      "skew_lower_ppm": number(a.model.skewLower), "skew_upper_ppm": number(a.model.skewUpper),
      "reference_ns": a.model.referenceNanoseconds, "pairs": pairs,
      "causality_violations": a.causalityViolations,
      "verdict": a.verdict.rawValue, "client_packets": a.clientPackets, "server_packets": a.serverPackets,
      "client_addresses": a.hosts.client.map(\.description).sorted(),
      "server_addresses": a.hosts.server.map(\.description).sorted(),
      "direction": a.hosts.decisions.map { decision -> [String: Any] in
        [
          "client_addresses": decision.client.map(\.description).sorted(),
          "server_addresses": decision.server.map(\.description).sorted(),
          "evidence": decision.evidence?.rawValue ?? NSNull(), "pairs": decision.pairs,
          "explanation": decision.explanation,
        ]
      },
      "undirected_pairs": a.undirectedPairs,
      "segments": a.segments.map { segment -> [String: Any] in
        [
          "start_ns": segment.startClientNanoseconds == .min ? NSNull() : segment.startClientNanoseconds,
          "end_ns": segment.endClientNanoseconds == .max ? NSNull() : segment.endClientNanoseconds,
          "pairs": segment.pairs, "offset_ns": number(segment.model.offsetNanoseconds),
          "offset_lower_ns": number(segment.model.offsetLower),
          "offset_upper_ns": number(segment.model.offsetUpper),
          "skew_ppm": number(segment.model.skewPPM),
        ]
      },
      "warnings": a.warnings,
    ]
    if let window = a.window {
      object["pairing_window"] = [
        "window_ns": window.windowNanoseconds, "most_waiting": window.mostWaiting,
        "unpaired_client": window.unpairedClient, "unpaired_server": window.unpairedServer,
      ]
    }
    let data =
      (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
    return String(decoding: data, as: UTF8.self) + "\n"
  }

  /// `merged.pcapng`: every packet of both captures on the reference clock, one IDB per side
  /// and interface (`<host>:<ifname>`), the same packet id on both copies of a paired packet,
  /// a comment on paired packets with the one-way delay. Two streams are merged in time order;
  /// interfaces are added as they appear. The pairs come from `a.pairs`.
  public static func writeMergedPcapng(
    _ a: Alignment, client: String, server: String, clientName: String, serverName: String, to path: String,
    referenceIsServer: Bool = false
  ) throws(CaptureFileError) {
    var notes = ListedPairNotes(a)
    try writeMerged(
      a, client: client, server: server, clientName: clientName, serverName: serverName, to: path,
      referenceIsServer: referenceIsServer, notes: &notes)
  }

  /// The same file as `writeMergedPcapng`, with the pairs read from the note files of a
  /// windowed walk (`WindowedAligner`): memory stays flat. Counts the causality violations
  /// into `a` and returns the one-way delays per direction.
  public static func writeMergedPcapng(
    _ a: inout Alignment, logs: PairLogs, client: String, server: String, clientName: String,
    serverName: String, to path: String, referenceIsServer: Bool = false
  ) throws(CaptureFileError) -> [DelaySummary] {
    var notes = try LoggedPairNotes(a, logs: logs)
    try writeMerged(
      a, client: client, server: server, clientName: clientName, serverName: serverName, to: path,
      referenceIsServer: referenceIsServer, notes: &notes)
    a.causalityViolations = notes.causalityViolations
    return notes.delays.compactMap { $0.summary() }
  }

  static func writeMerged(
    _ a: Alignment, client: String, server: String, clientName: String, serverName: String, to path: String,
    referenceIsServer: Bool, notes: inout some PairNotes
  ) throws(CaptureFileError) {
    // Written under a temporary name, renamed when complete: a merge killed midway leaves no
    // merged.pcapng that looks whole.
    let staged = StagedFile(finalPath: path)
    let writer = try PcapngWriter(
      path: staged.temporaryPath, application: "smcpair merge", os: nil,
      hardware:
        "clock model: server = client \(Int64(clampingRounded: a.model.offsetNanoseconds)) ns, skew \(a.model.skewPPM) ppm, bounds \(a.model.offsetLower)..\(a.model.offsetUpper) ns (\(a.verdict.rawValue))",
      mode: 0o600)
    // Each side is read on its own thread, ahead of the writer, in file order: the pairing
    // notes are in frame order.
    var feeds = [
      try SideFeed(path: client, order: .fileOrder),
      try SideFeed(path: server, isServer: true, order: .fileOrder),
    ]
    var interfaceMap: [[Int]] = [[], []]
    func interfaceID(_ side: Int, _ local: Int) throws(CaptureFileError) -> Int {
      while interfaceMap[side].count <= local { interfaceMap[side].append(-1) }
      if interfaceMap[side][local] >= 0 { return interfaceMap[side][local] }
      let interface = feeds[side].interfaces[local]
      let id = try writer.addInterface(
        InterfaceDescription(
          name: "\(side == 0 ? clientName : serverName):\(interface.name ?? "if\(local)")",
          description: side == 0 ? "client" : "server", linkType: interface.linkType,
          snapLength: interface.snapLength))
      interfaceMap[side][local] = id
      return id
    }
    func alignedTime(_ packet: CapturedPacket, side: Int) -> Int64 {
      if referenceIsServer {
        return side == 1 ? packet.timestampNanoseconds : a.serverTime(atClient: packet.timestampNanoseconds)
      }
      return side == 0 ? packet.timestampNanoseconds : a.clientTime(atServer: packet.timestampNanoseconds)
    }
    var next: [CapturedPacket?] = [try feeds[0].next()?.packet, try feeds[1].next()?.packet]
    var nextTime: [Int64] = next.enumerated().map { side, packet in
      packet.map { alignedTime($0, side: side) } ?? .max
    }
    var comment: [UInt8] = []
    comment.reserveCapacity(96)
    let prefix = Array("smcpair pair ".utf8)
    let kindText = PairKind.allCases.map { Array(": \($0.rawValue) ".utf8) }
    let toServerText = Array("client->server, one-way delay ".utf8)
    let toClientText = Array("server->client, one-way delay ".utf8)
    let unitText = Array(" us".utf8)
    while next[0] != nil || next[1] != nil {
      let side = next[0] != nil && (next[1] == nil || nextTime[0] <= nextTime[1]) ? 0 : 1
      let packet = next[side]!
      let note = try notes.note(
        side: side, packet: packet, linkType: feeds[side].interfaces[packet.interface].linkType)
      let id = try interfaceID(side, packet.interface)
      if note.pairNumber > 0 {
        // "smcpair pair N: KIND DIRECTION, one-way delay X.Y us", built as bytes.
        let delay = note.delay
        let tenths = (delay + (delay >= 0 ? 50 : -50)) / 100
        comment.removeAll(keepingCapacity: true)
        comment += prefix
        TextWriter.decimal(UInt64(note.pairNumber), into: &comment)
        comment += kindText[PairKind.allCases.firstIndex(of: note.kind)!]
        comment += note.clientToServer ? toServerText : toClientText
        if tenths < 0 { comment.append(UInt8(ascii: "-")) }
        TextWriter.decimal(UInt64(abs(tenths) / 10), into: &comment)
        comment.append(UInt8(ascii: "."))
        TextWriter.decimal(UInt64(abs(tenths) % 10), into: &comment)
        comment += unitText
        let written: Result<Void, CaptureFileError> = comment.withUnsafeBytes { text in
          do throws(CaptureFileError) {
            try writer.writePacket(
              interface: id, timestampNanoseconds: nextTime[side], data: packet.data,
              originalLength: packet.originalLength, direction: note.direction, commentUTF8: text,
              packetID: UInt64(note.pairNumber))
            return .success(())
          } catch {
            return .failure(error)
          }
        }
        try written.get()
      } else {
        try writer.writePacket(
          interface: id, timestampNanoseconds: nextTime[side], data: packet.data,
          originalLength: packet.originalLength,
          direction: note.direction)
      }
      next[side] = try feeds[side].next()?.packet
      nextTime[side] = next[side].map { alignedTime($0, side: side) } ?? .max
    }
    try writer.close()
    try staged.commit()
  }
}

/// What merged.pcapng says about one packet: its pair (number 0: none) and direction.
struct PacketNote {
  var pairNumber = 0
  var kind = PairKind.tcp
  var clientToServer = false
  var delay: Int64 = 0
  var direction = PacketDirection.unknown

  /// Outbound when the packet left the host whose capture it is in, by the decided hosts.
  static func direction(source: IPAddress, side: Int, hosts: HostAddresses) -> PacketDirection {
    guard let fromClient = hosts.fromClient(source) else { return .unknown }
    return fromClient == (side == 0) ? .outbound : .inbound
  }
}

/// Gives the note of each packet, asked side by side in file order.
protocol PairNotes {
  mutating func note(side: Int, packet: CapturedPacket, linkType: LinkType) throws(CaptureFileError)
    -> PacketNote
}

/// Notes from the pairs of an in-memory alignment: pair number = index in `a.pairs` + 1.
struct ListedPairNotes: PairNotes {
  let alignment: Alignment
  /// Pair index per frame (frames are 1-based and dense), per side.
  var pairOfFrame: [[Int32]] = [[], []]

  init(_ a: Alignment) {
    alignment = a
    for (side, count) in [a.clientPackets, a.serverPackets].enumerated() {
      pairOfFrame[side] = [Int32](repeating: -1, count: count + 1)
    }
    for (index, pair) in a.pairs.enumerated() {
      if pair.client.frame < pairOfFrame[0].count { pairOfFrame[0][pair.client.frame] = Int32(index) }
      if pair.server.frame < pairOfFrame[1].count { pairOfFrame[1][pair.server.frame] = Int32(index) }
    }
  }

  func note(side: Int, packet: CapturedPacket, linkType: LinkType) -> PacketNote {
    var note = PacketNote()
    if !alignment.hosts.client.isEmpty || !alignment.hosts.server.isEmpty {
      let frame = FrameDecoder.decode(packet.data, linkType: linkType)
      if frame.issue == nil {
        note.direction = PacketNote.direction(source: frame.source, side: side, hosts: alignment.hosts)
      }
    }
    let index = packet.frame < pairOfFrame[side].count ? Int(pairOfFrame[side][packet.frame]) : -1
    guard index >= 0 else { return note }
    let pair = alignment.pairs[index]
    note.pairNumber = index + 1
    note.kind = pair.kind
    note.clientToServer = pair.clientToServer
    note.delay = alignment.oneWayDelay(
      clientToServer: pair.clientToServer, client: pair.client.timeNanoseconds,
      server: pair.server.timeNanoseconds)
    return note
  }
}

/// Notes from the per-side note files of a windowed walk, read in step with the writer.
struct LoggedPairNotes: PairNotes {
  let alignment: Alignment
  let logs: PairLogs
  let readers: [PairLogReader]
  /// Per source id: is it a client address? (nil: undecided)
  let fromClient: [Bool?]
  var causalityViolations = 0
  /// One-way delays: [client→server, server→client].
  var delays = [DelayHistogram(clientToServer: true), DelayHistogram(clientToServer: false)]

  init(_ a: Alignment, logs: PairLogs) throws(CaptureFileError) {
    alignment = a
    self.logs = logs
    readers = [try PairLogReader(path: logs.paths[0]), try PairLogReader(path: logs.paths[1])]
    fromClient = logs.sources.map { a.hosts.fromClient($0) }
  }

  mutating func note(side: Int, packet: CapturedPacket, linkType: LinkType) throws(CaptureFileError)
    -> PacketNote
  {
    guard let logged = readers[side].next() else {
      throw CaptureFileError(
        .corrupt, "frame \(packet.frame) is not in the pairing notes: the file changed while it was merged",
        path: logs.paths[side])
    }
    var note = PacketNote()
    guard logged.sourceID != LoggedNote.noSource else { return note }
    guard let client = fromClient[Int(logged.sourceID)] else { return note }
    note.direction = client == (side == 0) ? .outbound : .inbound
    guard logged.pairNumber > 0 else { return note }
    note.pairNumber = Int(logged.pairNumber)
    note.kind = PairKind.allCases[Int(logged.kind)]
    note.clientToServer = client
    let (c, s) =
      side == 0
      ? (packet.timestampNanoseconds, logged.partnerTime) : (logged.partnerTime, packet.timestampNanoseconds)
    note.delay = alignment.oneWayDelay(clientToServer: client, client: c, server: s)
    if side == 0 {
      // Each pair once.
      if alignment.violatesCausality(clientToServer: client, client: c, server: s) {
        causalityViolations += 1
      }
      delays[client ? 0 : 1].add(note.delay)
    }
    return note
  }
}
