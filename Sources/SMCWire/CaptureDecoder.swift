import CaptureFiles

/// One SMC-relevant event found in a capture.
public struct SMCEvent {
  public enum Kind: String, Sendable, CaseIterable {
    case tcp, clc, cdc, data, llc

    @inline(__always) var index: Int {
      switch self {
      case .tcp: 0
      case .clc: 1
      case .cdc: 2
      case .data: 3
      case .llc: 4
      }
    }
  }

  public var kind: Kind
  public var frame: Int
  public var timeNanoseconds: Int64
  /// Index into the reader's interfaces.
  public var interface: Int
  public var source: Endpoint
  public var destination: Endpoint
  public var direction: PacketDirection = .unknown
  public var tcp: TCPHeader?
  public var tcpPayloadLength = 0
  public var clc: CLCMessage?
  public var cdc: CDCMessage?
  public var llc: LLCMessage?
  /// Events read from RoCEv2 packets: their queue pair and sequence number (the addresses
  /// are then the RDMA NICs', not the TCP connection's).
  public var roce: RoCEv2Fields?
  /// `data`: payload bytes of the record.
  public var dataLength: Int?
  public var mode: SMCMode?
  /// Something about this event a reader should know (short record, unknown header).
  public var note: String?
  /// `clc`: a TCP retransmission of a message already reported (not counted again).
  public var retransmission = false

  init(kind: Kind, frame: Int, time: Int64, interface: Int, source: Endpoint, destination: Endpoint) {
    self.kind = kind
    self.frame = frame
    timeNanoseconds = time
    self.interface = interface
    self.source = source
    self.destination = destination
  }
}

/// Counters and findings for one decoded file.
public struct DecodeSummary: Sendable {
  public var path: String
  public var format: CaptureFormat
  public var interfaces: [CaptureInterface] = []
  public var packets = 0
  public var events: [String: Int] = [:]
  /// Frames that are not IP/TCP/UDP or not SMC-related.
  public var otherFrames = 0
  /// Frames whose headers are malformed, by problem.
  public var malformedFrames: [String: Int] = [:]
  public var unsupportedLinkTypes: Set<UInt32> = []
  public var clcProblems = 0
  /// CLC messages seen again in TCP retransmissions (reported once, marked, not recounted).
  public var clcRetransmissions = 0
  /// TCP directions whose CLC bytes exceeded the reassembly buffer (`clcBufferLimit`).
  public var clcStreamsOverflowed = 0
  /// Bytes one TCP direction may hold while its CLC messages are reassembled.
  public var clcBufferLimit = CLCStreams.bufferLimit
  /// The reorder window events were put in time order with.
  public var reorderWindow = TimeOrderedPackets.Window.standard
  /// Packets the file holds out of time order (put in order by the reorder window).
  public var packetsOutOfOrder = 0
  /// Packets later than the reorder window: their events are printed where they are in the
  /// file, out of time order.
  public var packetsBeyondReorderWindow = 0
  public var shortCDCRecords = 0
  /// CDC and LLC messages and RDMA writes read from RoCEv2 packets.
  public var roce = RoCESummary()
  public var dumpLayout = DumpHeaderLayout(source: .unknown)
  public var connections: [ConnectionRecord] = []
  /// Damage that stopped reading; everything before it was decoded.
  public var damage: CaptureFileError?
}

/// Decoding options.
public struct DecodeOptions: Sendable {
  /// Overrides the calibrated dump header length.
  public var dumpHeaderLength: Int?
  public init(dumpHeaderLength: Int? = nil) { self.dumpHeaderLength = dumpHeaderLength }
}

/// Decodes one capture file into SMC events in two streaming passes over the memory map:
/// pass 1 calibrates the dump header and learns each connection's handshake, pass 2 emits
/// events in time order (through `TimeOrderedPackets`, so a file written in per-interface
/// runs still reads as one conversation; frame numbers stay the file's). CLC messages are
/// reassembled per TCP direction and reported at the frame that completes them.
public final class CaptureDecoder {
  public let path: String
  public let options: DecodeOptions
  public private(set) var summary: DecodeSummary
  /// Interfaces of the file, known once pass 1 has run (before the first event).
  public private(set) var interfaces: [CaptureInterface] = []
  private var table = ConnectionTable()

  public init(path: String, options: DecodeOptions = DecodeOptions()) throws(CaptureFileError) {
    self.path = path
    self.options = options
    let probe = try CaptureFileReader(path: path)
    summary = DecodeSummary(path: path, format: probe.format)
  }

  /// Runs both passes, calling `body` for every event. Damage is recorded in `summary.damage`
  /// (not thrown): the events before it are still delivered.
  public func run(_ body: (SMCEvent) -> Void) throws(CaptureFileError) {
    // Locals, not stored properties, in the per-packet loops: class properties cost a
    // dynamic exclusivity check on every access.
    var summary = self.summary
    var table = ConnectionTable()
    defer {
      self.table = table
      self.summary = summary
    }
    let first = try TimeOrderedPackets(path: path, window: summary.reorderWindow)
    var handshakes = HandshakePass()
    var readable = 0
    var damage: CaptureFileError?
    do {
      while let packet = try first.next() {
        readable += 1
        handshakes.observe(packet, linkType: first.interfaces[packet.interface].linkType)
      }
    } catch {
      damage = error
    }
    handshakes.finish()
    self.interfaces = first.interfaces
    summary.packetsOutOfOrder = first.outOfOrder
    summary.packetsBeyondReorderWindow = first.beyondWindow
    summary.dumpLayout = handshakes.calibrator.layout(overrideLength: options.dumpHeaderLength)
    table = handshakes.table

    var events = EventPass(layout: summary.dumpLayout)
    let learned = handshakes.table
    let reader = try TimeOrderedPackets(path: path, window: summary.reorderWindow)
    var count = 0
    while count < readable, let packet = try? reader.next() {
      count += 1
      events.decode(
        packet, linkType: reader.interfaces[packet.interface].linkType, handshakes: learned, table: &table,
        summary: &summary, body)
    }
    events.finish(summary: &summary, body)
    summary.packets = readable
    // Pass 1 read to the end, so its interfaces hold the statistics blocks that follow the
    // last packet (pass 2 stops at the last packet).
    summary.interfaces = first.interfaces
    summary.damage = damage
    summary.connections = table.ordered.filter(\.isSMCRelated)
  }

  /// A display name for interface `index`: its pcapng name, else `if<index>`.
  public func interfaceName(_ index: Int) -> String {
    if index < interfaces.count, let name = interfaces[index].name, !name.isEmpty { return name }
    return "if\(index)"
  }
}

/// Pass 1 of a decode, one packet at a time: calibrates the dump header and learns each
/// connection's handshake (CLC reassembled per TCP direction).
struct HandshakePass {
  var calibrator = DumpHeaderCalibrator()
  var streams = CLCStreams()
  var table = ConnectionTable()
  /// A second table every note also goes to (the one-pass decoder adds the dump records to
  /// it, as pass 2 does to a copy of `table`).
  var echo: ConnectionTable?

  mutating func observe(_ packet: CapturedPacket, linkType: LinkType) {
    let frame = FrameDecoder.decode(packet.data, linkType: linkType)
    guard frame.issue == nil else { return }
    if frame.isTCP {
      let result = streams.receive(
        frame, frameNumber: packet.frame, time: packet.timestampNanoseconds, interface: packet.interface)
      note(frame, time: packet.timestampNanoseconds, result)
    } else if frame.isUDP, DumpHeaderCalibrator.isDumpRecord(frame.payload) {
      calibrator.observe(frame.payload)
      let time = packet.timestampNanoseconds
      table.noteDumpShape(
        frame.payload, src: frame.sourceEndpoint, dst: frame.destinationEndpoint, time: time)
      echo?.noteDumpShape(
        frame.payload, src: frame.sourceEndpoint, dst: frame.destinationEndpoint, time: time)
    }
  }

  /// Records a TCP segment and the CLC messages its reassembly completed.
  mutating func note(_ frame: Frame, time: Int64, _ result: CLCSegmentResult) {
    table.noteTCP(frame, time: time, plainBytes: result.plainBytes)
    echo?.noteTCP(frame, time: time, plainBytes: result.plainBytes)
    for item in result.messages {
      table.noteCLC(
        item.message, from: frame.sourceEndpoint, to: frame.destinationEndpoint, time: time,
        retransmission: item.retransmission)
      echo?.noteCLC(
        item.message, from: frame.sourceEndpoint, to: frame.destinationEndpoint, time: time,
        retransmission: item.retransmission)
    }
  }

  /// CLC messages whose end never arrived count for their connection's handshake too.
  mutating func finish() {
    for unfinished in streams.unfinished() {
      table.noteCLC(
        unfinished.message, from: unfinished.source, to: unfinished.destination, time: unfinished.nanoseconds)
      echo?.noteCLC(
        unfinished.message, from: unfinished.source, to: unfinished.destination, time: unfinished.nanoseconds)
    }
  }
}

/// Pass 2 of a decode, one packet at a time: the packet's events, given what pass 1 learned
/// (`handshakes`: which connections are SMC's, their modes; `layout`: the dump header).
struct EventPass {
  let layout: DumpHeaderLayout
  /// TCP events for every segment, not only for SMC connections' (the one-pass decoder
  /// learns which connections are SMC's only at the end).
  var everyTCPSegment = false
  var streams = CLCStreams()
  var counts = [Int](repeating: 0, count: SMCEvent.Kind.allCases.count)

  init(layout: DumpHeaderLayout) { self.layout = layout }

  /// `handshakes` is what pass 1 learned; `table` gets the dump records.
  mutating func decode(
    _ packet: CapturedPacket, linkType: LinkType, handshakes: ConnectionTable, table: inout ConnectionTable,
    summary: inout DecodeSummary, _ body: (SMCEvent) -> Void
  ) {
    let frame = FrameDecoder.decode(packet.data, linkType: linkType)
    if let issue = frame.issue {
      if case .unsupportedLinkType(let t) = issue { summary.unsupportedLinkTypes.insert(t) }
      if issue.isMalformed {
        summary.malformedFrames[issue.text, default: 0] += 1
      } else {
        summary.otherFrames += 1
      }
      return
    }
    var emitted = false
    if frame.isTCP {
      let result = streams.receive(
        frame, frameNumber: packet.frame, time: packet.timestampNanoseconds, interface: packet.interface)
      let known = handshakes[ConnectionKey(frame.sourceEndpoint, frame.destinationEndpoint)]
      emitted = emitTCP(
        frame, packet, result, smcRelated: known?.isSMCRelated ?? false, summary: &summary, body)
    } else if let roce = RoCEv2Packet(frame) {
      emitted = emitRoCE(roce, frame, packet, summary: &summary, body)
    } else if frame.isUDP, DumpHeaderCalibrator.isDumpRecord(frame.payload) {
      let known = handshakes[ConnectionKey(frame.sourceEndpoint, frame.destinationEndpoint)]
      emitDumpRecord(frame, packet, known: known, table: &table, summary: &summary, body)
      emitted = true
    }
    if !emitted { summary.otherFrames += 1 }
  }

  /// A TCP segment of an SMC connection (or offering SMC) and the CLC messages it completes.
  mutating func emitTCP(
    _ frame: Frame, _ packet: CapturedPacket, _ result: CLCSegmentResult, smcRelated: Bool,
    summary: inout DecodeSummary, _ body: (SMCEvent) -> Void
  ) -> Bool {
    guard let tcp = frame.tcp else { return false }
    let src = frame.sourceEndpoint
    let dst = frame.destinationEndpoint
    guard everyTCPSegment || tcp.smcOption || smcRelated else {
      if result.overflowed { summary.clcStreamsOverflowed += 1 }
      return false
    }
    var event = SMCEvent(
      kind: .tcp, frame: packet.frame, time: packet.timestampNanoseconds, interface: packet.interface,
      source: src, destination: dst)
    event.tcp = tcp
    event.tcpPayloadLength = frame.wirePayloadLength
    event.direction = packet.direction
    if result.overflowed {
      event.note =
        "CLC reassembly needs more than \(CLCStreams.bufferLimit) bytes in this direction: later CLC bytes are not decoded"
      summary.clcStreamsOverflowed += 1
    }
    body(event)
    counts[SMCEvent.Kind.tcp.index] += 1
    event.note = nil
    for item in result.messages {
      var clcEvent = event
      clcEvent.kind = .clc
      clcEvent.clc = item.message
      clcEvent.mode = item.message.mode
      clcEvent.retransmission = item.retransmission
      if item.retransmission {
        summary.clcRetransmissions += 1
      } else if let problem = item.message.problem {
        clcEvent.note = problem.text
        summary.clcProblems += 1
      }
      body(clcEvent)
      counts[SMCEvent.Kind.clc.index] += 1
    }
    return true
  }

  /// A dump record: a CDC message or data, classified with the calibrated layout and the
  /// connection's mode.
  mutating func emitDumpRecord(
    _ frame: Frame, _ packet: CapturedPacket, known: ConnectionRecord?, table: inout ConnectionTable,
    summary: inout DecodeSummary, _ body: (SMCEvent) -> Void
  ) {
    let src = frame.sourceEndpoint
    let dst = frame.destinationEndpoint
    let connectionMode = known?.mode ?? (known.map { $0.cdcShapeR > 0 ? SMCMode.smcR : nil } ?? nil)
    let content = layout.classify(
      frame.payload, wireLength: frame.wirePayloadLength, connectionMode: connectionMode)
    table.noteDumpRecord(content, src: src, dst: dst, time: packet.timestampNanoseconds)
    var event = SMCEvent(
      kind: .data, frame: packet.frame, time: packet.timestampNanoseconds, interface: packet.interface,
      source: src, destination: dst)
    event.direction = packet.direction
    switch content {
    case .cdc(let message):
      event.kind = .cdc
      event.cdc = message
      event.mode = message.mode
    case .data(let length):
      event.dataLength = length
      event.mode = connectionMode
    case .shortCDC(let length):
      event.kind = .cdc
      event.mode = connectionMode
      event.dataLength = length
      event.note = "CDC record too short: \(length) bytes after the dump header"
      summary.shortCDCRecords += 1
    case .unknownHeader(let length):
      event.mode = connectionMode
      event.note = "dump header length unknown (record is \(length) bytes); pass --dump-header-len N"
    }
    body(event)
    counts[event.kind.index] += 1
  }

  /// Messages whose end never arrived: reported at the packet that carried their start,
  /// after the last event (their end was awaited until the capture ended); then the counts.
  mutating func finish(summary: inout DecodeSummary, _ body: (SMCEvent) -> Void) {
    for unfinished in streams.unfinished() {
      var event = SMCEvent(
        kind: .clc, frame: unfinished.frame, time: unfinished.nanoseconds, interface: unfinished.interface,
        source: unfinished.source, destination: unfinished.destination)
      event.clc = unfinished.message
      event.mode = unfinished.message.mode
      event.note =
        "the capture ends before this CLC message does: \(unfinished.received) of \(unfinished.message.length) bytes arrived"
      summary.clcProblems += 1
      body(event)
      counts[SMCEvent.Kind.clc.index] += 1
    }
    for kind in SMCEvent.Kind.allCases where counts[kind.index] > 0 {
      summary.events[kind.rawValue] = counts[kind.index]
    }
  }
}

/// A capture's SMC events decoded in one pass, for a caller that already reads the file in
/// time order (the merge's pairing walk) and must not read it again.
///
/// Unlike `CaptureDecoder`, what pass 1 would learn from the whole file is known only up to
/// the current packet: the dump header `layout` is given (calibrated on the file's start),
/// a dump record is classified with its connection's mode as learned so far, and TCP events
/// come for every segment — `isSMCRelated` tells, once the file is read, which connections
/// they belong to would have had them.
public struct OnePassCaptureDecoder {
  private var handshakes = HandshakePass()
  private var events: EventPass
  private var summary: DecodeSummary

  public init(path: String, format: CaptureFormat, layout: DumpHeaderLayout) {
    events = EventPass(layout: layout)
    events.everyTCPSegment = true
    handshakes.echo = ConnectionTable()
    summary = DecodeSummary(path: path, format: format)
    summary.dumpLayout = layout
  }

  /// The events of `packet` (the next in time order).
  public mutating func decode(_ packet: CapturedPacket, linkType: LinkType, _ body: (SMCEvent) -> Void) {
    handshakes.observe(packet, linkType: linkType)
    // Moved out and back, so that adding the dump records never copies the table.
    guard var table = handshakes.echo.take() else { return }
    defer { handshakes.echo = table }
    events.decode(
      packet, linkType: linkType, handshakes: handshakes.table, table: &table, summary: &summary, body)
  }

  /// Ends the file: CLC messages that never finished are noted and reported.
  public mutating func finish(_ body: (SMCEvent) -> Void) {
    handshakes.finish()
    events.finish(summary: &summary, body)
  }

  /// Whether the connection of `key` is SMC's (offered, negotiated or carrying dump records),
  /// by everything read so far: after the last packet, as `CaptureDecoder` would tell.
  public func isSMCRelated(_ key: ConnectionKey) -> Bool {
    handshakes.table[key]?.isSMCRelated ?? false
  }

  /// The SMC connections read so far, in the order they were first seen.
  public var connections: [ConnectionRecord] {
    (handshakes.echo ?? handshakes.table).ordered.filter(\.isSMCRelated)
  }
}
