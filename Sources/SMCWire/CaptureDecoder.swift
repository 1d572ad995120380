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
    var table = ConnectionTable()
    var summary = self.summary
    defer {
      self.table = table
      self.summary = summary
    }
    // Pass 1: calibration and handshake facts.
    var calibrator = DumpHeaderCalibrator()
    let first = try TimeOrderedPackets(path: path, window: summary.reorderWindow)
    var streams = CLCStreams()
    var damage: CaptureFileError?
    var readable = 0
    do {
      while let packet = try first.next() {
        readable += 1
        let linkType = first.interfaces[packet.interface].linkType
        let frame = FrameDecoder.decode(packet.data, linkType: linkType)
        if frame.issue != nil { continue }
        let time = packet.timestampNanoseconds
        if frame.isTCP {
          let result = streams.receive(
            frame, frameNumber: packet.frame, time: time, interface: packet.interface)
          table.noteTCP(frame, time: time, plainBytes: result.plainBytes)
          for item in result.messages {
            table.noteCLC(
              item.message, from: frame.sourceEndpoint, to: frame.destinationEndpoint, time: time,
              retransmission: item.retransmission)
          }
        } else if frame.isUDP, DumpHeaderCalibrator.isDumpRecord(frame.payload) {
          calibrator.observe(frame.payload)
          table.noteDumpShape(
            frame.payload, src: frame.sourceEndpoint, dst: frame.destinationEndpoint, time: time)
        }
      }
    } catch {
      damage = error
    }
    for unfinished in streams.unfinished() {
      table.noteCLC(
        unfinished.message, from: unfinished.source, to: unfinished.destination, time: unfinished.nanoseconds)
    }
    self.interfaces = first.interfaces
    summary.packetsOutOfOrder = first.outOfOrder
    summary.packetsBeyondReorderWindow = first.beyondWindow
    let layout = calibrator.layout(overrideLength: options.dumpHeaderLength)
    summary.dumpLayout = layout
    let handshakes = table

    // Pass 2: events in time order.
    var counts = [Int](repeating: 0, count: SMCEvent.Kind.allCases.count)
    let reader = try TimeOrderedPackets(path: path, window: summary.reorderWindow)
    streams = CLCStreams()
    var count = 0
    while count < readable, let packet = try? reader.next() {
      count += 1
      let interfaceIndex = packet.interface
      let linkType = reader.interfaces[interfaceIndex].linkType
      let frame = FrameDecoder.decode(packet.data, linkType: linkType)
      let time = packet.timestampNanoseconds
      if let issue = frame.issue {
        if case .unsupportedLinkType(let t) = issue { summary.unsupportedLinkTypes.insert(t) }
        if issue.isMalformed {
          summary.malformedFrames[issue.text, default: 0] += 1
        } else {
          summary.otherFrames += 1
        }
        continue
      }
      let src = frame.sourceEndpoint
      let dst = frame.destinationEndpoint
      var emitted = false
      if frame.isTCP, let tcp = frame.tcp {
        let result = streams.receive(frame, frameNumber: packet.frame, time: time, interface: interfaceIndex)
        let record = handshakes[ConnectionKey(src, dst)]
        if tcp.smcOption || (record?.isSMCRelated ?? false) {
          var event = SMCEvent(
            kind: .tcp, frame: packet.frame, time: time, interface: interfaceIndex, source: src,
            destination: dst)
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
          emitted = true
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
        } else if result.overflowed {
          summary.clcStreamsOverflowed += 1
        }
      } else if frame.isUDP, DumpHeaderCalibrator.isDumpRecord(frame.payload) {
        let known = handshakes[ConnectionKey(src, dst)]
        let connectionMode = known?.mode ?? (known.map { $0.cdcShapeR > 0 ? SMCMode.smcR : nil } ?? nil)
        let content = layout.classify(
          frame.payload, wireLength: frame.wirePayloadLength, connectionMode: connectionMode)
        table.noteDumpRecord(content, src: src, dst: dst, time: time)
        var event = SMCEvent(
          kind: .data, frame: packet.frame, time: time, interface: interfaceIndex, source: src,
          destination: dst)
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
          event.note =
            "dump header length unknown (record is \(length) bytes); pass --dump-header-len N"
        }
        body(event)
        counts[event.kind.index] += 1
        emitted = true
      }
      if !emitted { summary.otherFrames += 1 }
    }
    // Messages whose end never arrived: reported at the packet that carried their start,
    // after the last event (their end was awaited until the capture ended).
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
