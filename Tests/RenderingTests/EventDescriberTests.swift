import Testing

@testable import Rendering
@testable import SMCWire

/// What the describer adds to an event from the conversation so far: relative sequence
/// numbers per direction, retransmissions, the cursor range of data records; and the labels.
@Suite struct EventDescriberTests {
  static let client = Endpoint(IPAddress(ipv4: 0x0A00_0001), 41000)
  static let server = Endpoint(IPAddress(ipv4: 0x0A00_0002), 7000)

  static func segment(
    _ flags: TCPFlags, seq: UInt32, ack: UInt32, length: Int = 0, fromClient: Bool = true, frame: Int = 1
  ) -> SMCEvent {
    var event = SMCEvent(
      kind: .tcp, frame: frame, time: Int64(frame), interface: 0, source: fromClient ? client : server,
      destination: fromClient ? server : client)
    event.tcp = TCPHeader(sequence: seq, acknowledgment: ack, flags: flags, window: 512, smcOption: false)
    event.tcpPayloadLength = length
    return event
  }

  static func cdc(prod: UInt32, seqno: UInt16, flags: CDCProducerFlags = [], fromClient: Bool = true)
    -> SMCEvent
  {
    var event = SMCEvent(
      kind: .cdc, frame: 9, time: 9, interface: 1, source: fromClient ? client : server,
      destination: fromClient ? server : client)
    event.cdc = CDCMessage(
      mode: .smcR, sequenceNumber: seqno, token: 7, producer: CDCCursor(wrap: 0, count: prod),
      consumer: CDCCursor(wrap: 0, count: 0), producerFlags: flags)
    event.mode = .smcR
    return event
  }

  static func data(_ length: Int, fromClient: Bool = true) -> SMCEvent {
    var event = SMCEvent(
      kind: .data, frame: 8, time: 8, interface: 1, source: fromClient ? client : server,
      destination: fromClient ? server : client)
    event.dataLength = length
    event.mode = .smcR
    return event
  }

  @Test func sequenceNumbersAreRelativePerDirectionAsInWireshark() {
    var describer = EventDescriber()
    let syn = describer.describe(Self.segment(.syn, seq: 1000, ack: 0))
    let synAck = describer.describe(Self.segment([.syn, .ack], seq: 5000, ack: 1001, fromClient: false))
    let ack = describer.describe(Self.segment(.ack, seq: 1001, ack: 5001))
    let push = describer.describe(Self.segment([.psh, .ack], seq: 1001, ack: 5001, length: 52))
    #expect(syn.seqRelative == 0 && syn.ackRelative == nil && syn.seq == 1000)
    #expect(synAck.seqRelative == 0 && synAck.ackRelative == 1 && synAck.ack == 1001)
    #expect(ack.seqRelative == 1 && ack.ackRelative == 1)
    #expect(push.seqRelative == 1 && push.payloadLength == 52)
    #expect(syn.label == "SYN Seq=0 Len=0")
    #expect(synAck.label == "SYN, ACK Seq=0 Ack=1 Len=0")
    #expect(ack.label == "ACK Seq=1 Ack=1 Len=0")
    #expect(push.label == "PSH, ACK Seq=1 Ack=1 Len=52")
    // Around the 32-bit wrap the relative numbers still count from the first.
    var wrapping = EventDescriber()
    _ = wrapping.describe(Self.segment(.syn, seq: UInt32.max - 1, ack: 0))
    let after = wrapping.describe(Self.segment(.ack, seq: UInt32.max, ack: 0, length: 10))
    let next = wrapping.describe(Self.segment(.ack, seq: 9, ack: 0, length: 10))
    #expect(after.seqRelative == 1 && next.seqRelative == 11 && !next.tcpRetransmission)
  }

  @Test func aSegmentSentAgainIsARetransmission() {
    var describer = EventDescriber()
    _ = describer.describe(Self.segment(.syn, seq: 100, ack: 0))
    let first = describer.describe(Self.segment([.psh, .ack], seq: 101, ack: 1, length: 100))
    let again = describer.describe(Self.segment([.psh, .ack], seq: 101, ack: 1, length: 100))
    let pureAck = describer.describe(Self.segment(.ack, seq: 201, ack: 1))
    let duplicateAck = describer.describe(Self.segment(.ack, seq: 201, ack: 1))
    let synAgain = describer.describe(Self.segment(.syn, seq: 100, ack: 0))
    #expect(!first.tcpRetransmission && again.tcpRetransmission)
    #expect(!pureAck.tcpRetransmission && !duplicateAck.tcpRetransmission, "no bytes, nothing sent again")
    #expect(synAgain.tcpRetransmission)
    #expect(again.label == "PSH, ACK Seq=1 Ack=1 Len=100 [TCP Retransmission]")
    var members: [String: EventFieldValue] = [:]
    again.forEachMember { members[$0] = $1 }
    #expect(members["tcp_retransmission"] == .bool(true) && members["seq_rel"] == .int(1))
  }

  @Test func dataRecordsFillTheProducerCursorRangePerDirection() {
    var describer = EventDescriber()
    _ = describer.describe(Self.segment(.syn, seq: 1, ack: 0))
    let first = describer.describe(Self.data(1200))
    let cdc = describer.describe(Self.cdc(prod: 1200, seqno: 5, flags: .writeBlocked))
    let reply = describer.describe(Self.data(300, fromClient: false))
    let second = describer.describe(Self.data(800))
    #expect(
      first.rangeStart == CDCCursor(wrap: 0, count: 0) && first.rangeEnd == CDCCursor(wrap: 0, count: 1200))
    #expect(first.label == "data 1200 B 0:0..0:1200")
    #expect(cdc.label == "CDC #5 prod 0:1200 cons 0:0 [write-blocked]")
    #expect(
      reply.rangeStart == CDCCursor(wrap: 0, count: 0) && reply.rangeEnd == CDCCursor(wrap: 0, count: 300))
    #expect(
      second.rangeStart == CDCCursor(wrap: 0, count: 1200)
        && second.rangeEnd == CDCCursor(wrap: 0, count: 2000))
    // Without the connection's start the range is unknown, not guessed.
    var midway = EventDescriber()
    #expect(midway.describe(Self.data(100)).rangeStart == nil)
    #expect(midway.describe(Self.data(100)).label == "data 100 B")
  }

  @Test func theRingWrapsAtTheReceiversBufferSize() {
    var describer = EventDescriber()
    var accept = SMCEvent(
      kind: .clc, frame: 2, time: 2, interface: 0, source: Self.server, destination: Self.client)
    let bytes = CLCBuilder.acceptConfirmR(
      .accept, firstContact: true, peerID: 1, gid: (0, 0), mac: 0, qpNumber: 1, rmbRkey: 1, alertToken: 1,
      rmbeSizeCode: 0, rmbAddress: 0, initialPSN: 0)  // 16 KiB
    accept.clc = bytes.withUnsafeBytes { CLCMessage.decode($0)?.message }
    #expect(accept.clc?.bufferSize == 16384)
    _ = describer.describe(accept)
    _ = describer.describe(Self.cdc(prod: 16000, seqno: 1))
    let data = describer.describe(Self.data(1000))
    #expect(data.rangeStart == CDCCursor(wrap: 0, count: 16000))
    #expect(data.rangeEnd == CDCCursor(wrap: 1, count: 16000 + 1000 - 16384))
  }

  @Test func clcLabelsSayTypeVersionPathAndDeclineReason() {
    var description = EventDescription(kind: .clc)
    description.clcType = "proposal"
    description.clcVersion = 2
    description.clcPath = "R"
    description.clcPathV2 = "B"
    #expect(description.label == "CLC Proposal v2 B")
    var decline = EventDescription(kind: .clc)
    decline.clcType = "decline"
    decline.clcVersion = 1
    decline.clcPath = "R"
    decline.declineCode = 0x0303_0002
    #expect(decline.label.hasPrefix("CLC Decline v1 0x03030002 (NOSMCRDEV"))
    var members: [String: EventFieldValue] = [:]
    decline.forEachMember { members[$0] = $1 }
    #expect(members["decline_code"] == .string("0x03030002"))
    #expect(members["decline_reason"] == .string("NOSMCRDEV"))
    #expect(members["decline_text"] == DeclineReason.explanations[0x0303_0002].map(EventFieldValue.string))
  }

  @Test func membersComeInTheOrderOfTheirNames() {
    var describer = EventDescriber()
    _ = describer.describe(Self.segment(.syn, seq: 1, ack: 0))
    for event in [
      Self.segment([.syn, .ack], seq: 1, ack: 2, fromClient: false), Self.cdc(prod: 5, seqno: 1),
      Self.data(5),
    ] {
      var names: [String] = []
      describer.describe(event).forEachMember { name, _ in names.append(name) }
      #expect(names == names.sorted() && !names.isEmpty, "\(names)")
    }
  }
}
