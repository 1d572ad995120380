import CaptureFiles
import SMCSynthesis
import SMCWire
import TestSupport
import Testing

@Suite struct FrameDecoding {
  let client = Endpoint(IPAddress(ipv4: 0xC0A8_0001), 40000)
  let server = Endpoint(IPAddress(ipv4: 0xC0A8_0002), 443)

  func syn() -> [UInt8] {
    FrameBuilder.tcp(
      sourceMAC: 1, destinationMAC: 2, source: client, destination: server,
      segment: .init(sequence: 7, acknowledgment: 0, flags: [.syn], smcOption: true))
  }

  @Test func ethernetSYNWithSMCOption() throws {
    let f = syn().withUnsafeBytes { FrameDecoder.decode($0, linkType: .ethernet) }
    #expect(f.issue == nil)
    #expect(f.sourceEndpoint == client)
    #expect(f.destinationEndpoint == server)
    #expect(f.tcp?.smcOption == true)
    #expect(f.tcp?.sequence == 7)
    #expect(f.tcp?.flags == [.syn])
  }

  @Test func vlanSLLSLL2AndRawIPGiveTheSameFrame() throws {
    let eth = syn()
    var vlan = Array(eth[0..<12]) + [0x81, 0x00, 0x00, 0x2A] + Array(eth[12...])
    vlan[12] = 0x81
    let sll = FrameBuilder.sll(fromEthernet: eth, packetType: 4)
    let sll2 = FrameBuilder.sll2(fromEthernet: eth, interfaceIndex: 3, packetType: 4)
    let raw = Array(eth[14...])
    let cases: [([UInt8], LinkType)] = [
      (vlan, .ethernet), (sll, .linuxSLL), (sll2, .linuxSLL2), (raw, .rawIP),
    ]
    for (bytes, linkType) in cases {
      let f = bytes.withUnsafeBytes { FrameDecoder.decode($0, linkType: linkType) }
      #expect(f.issue == nil, "\(linkType)")
      #expect(f.sourceEndpoint == client, "\(linkType)")
      #expect(f.tcp?.smcOption == true, "\(linkType)")
    }
    let v = vlan.withUnsafeBytes { FrameDecoder.decode($0, linkType: .ethernet) }
    #expect(v.vlan == 42)
    let c = sll2.withUnsafeBytes { FrameDecoder.decode($0, linkType: .linuxSLL2) }
    #expect(c.cookedPacketType == 4)
  }

  @Test func ipv6() throws {
    let a = Endpoint(IPAddress("fd00::1")!, 5000)
    let b = Endpoint(IPAddress("fd00::2")!, 6000)
    let bytes = FrameBuilder.tcp(
      sourceMAC: 1, destinationMAC: 2, source: a, destination: b,
      segment: .init(sequence: 1, acknowledgment: 2, flags: [.psh, .ack]), payload: ThirdParty.decline)
    let f = bytes.withUnsafeBytes { FrameDecoder.decode($0, linkType: .ethernet) }
    #expect(f.ipVersion == 6)
    #expect(f.sourceEndpoint == a)
    #expect(f.sourceEndpoint.description == "[fd00::1]:5000")
    #expect(f.payload.count == 28)
  }

  @Test func addressTextForms() {
    #expect(IPAddress("10.1.2.3")?.description == "10.1.2.3")
    #expect(IPAddress("fe80::9a03:9bff:feab:cdef")?.description == "fe80::9a03:9bff:feab:cdef")
    #expect(IPAddress("::1")?.description == "::1")
    #expect(IPAddress("2001:db8:0:0:1:0:0:1")?.description == "2001:db8::1:0:0:1")
    #expect(IPAddress("1.2.3") == nil)
    #expect(IPAddress("1::2::3") == nil)
  }

  @Test func truncatedAndMalformedFramesAreReportedNotTrapped() {
    let full = syn()
    for cut in 0..<full.count {
      let f = Array(full[0..<cut]).withUnsafeBytes { FrameDecoder.decode($0, linkType: .ethernet) }
      if cut < 14 + 20 + 20 { #expect(f.issue != nil, "cut \(cut)") }
    }
    var badIHL = full
    badIHL[14] = 0x42
    #expect(badIHL.withUnsafeBytes { FrameDecoder.decode($0, linkType: .ethernet) }.issue == .badIPHeader)
    var unknown = full
    unknown[12] = 0x08
    unknown[13] = 0x06
    #expect(
      unknown.withUnsafeBytes { FrameDecoder.decode($0, linkType: .ethernet) }.issue
        == .notIP(etherType: 0x0806))
    #expect(
      full.withUnsafeBytes { FrameDecoder.decode($0, linkType: LinkType(rawValue: 147)) }.issue
        == .unsupportedLinkType(147))
  }

  @Test func randomBytesOnEveryLinkTypeNeverTrap() {
    var rng = SeededRandom(seed: 99)
    for round in 0..<3000 {
      let length = Int(rng.next() % 200)
      var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
      // Make many of them IP-ish so deeper decoders run.
      if length > 14 && round % 2 == 0 {
        bytes[12] = 0x08
        bytes[13] = 0x00
        bytes[14] = 0x45
      }
      for linkType in [LinkType.ethernet, .linuxSLL, .linuxSLL2, .rawIP] {
        let f = bytes.withUnsafeBytes { FrameDecoder.decode($0, linkType: linkType) }
        _ = f.payload.reduce(0) { $0 &+ $1 }
        _ = f.payload.withMemoryRebound(to: UInt8.self) { CLCMessage.decode(UnsafeRawBufferPointer($0)) }
      }
    }
  }
}

@Suite struct CLCLengthLies {
  @Test func lengthLongerThanSegment() throws {
    var bytes = ThirdParty.accept
    bytes[6] = 200  // claims 200 bytes, has 68
    let m = try #require(bytes.withUnsafeBytes { CLCMessage.decode($0) })
    #expect(m.message.problem == .truncated(declared: 200, available: 68))
    #expect(m.message.alertToken == 5)  // still decoded as far as the bytes go
    #expect(m.consumed == 68)
  }

  @Test func lengthShorterThanMinimum() throws {
    var bytes = ThirdParty.accept
    bytes[6] = 20
    let m = try #require(bytes.withUnsafeBytes { CLCMessage.decode($0) })
    #expect(m.message.problem == .lengthTooSmall(declared: 20, minimum: 48))
    // Fields beyond the declared length are not trusted.
    #expect(m.message.alertToken == nil)
  }

  @Test func trailerMissing() throws {
    var bytes = ThirdParty.decline
    bytes[27] = 0
    let m = try #require(bytes.withUnsafeBytes { CLCMessage.decode($0) })
    #expect(m.message.problem == .trailerMissing(at: 24))
    #expect(m.message.problem?.text.contains("may lie") == true)
  }

  @Test func shortBuffersAndUnknownTypes() {
    for cut in 0..<8 {
      #expect(Array(ThirdParty.accept[0..<cut]).withUnsafeBytes { CLCMessage.decode($0) } == nil)
    }
    var unknownType = ThirdParty.accept
    unknownType[4] = 9
    #expect(unknownType.withUnsafeBytes { CLCMessage.decode($0) } == nil)
    // Every prefix of a real message decodes without trapping.
    for message in [
      ThirdParty.proposalIPv6, ThirdParty.accept, ThirdParty.smcdV2AcceptFCE, ThirdParty.decline,
    ] {
      for cut in 8...message.count {
        let m = Array(message[0..<cut]).withUnsafeBytes { CLCMessage.decode($0) }
        #expect(m != nil)
        if cut < message.count { #expect(m?.message.problem != nil) }
      }
    }
  }
}

@Suite struct CDCDecoding {
  @Test func smcRFlagsAndState() throws {
    let message = CDCMessage(
      mode: .smcR, sequenceNumber: 0xFFFF, token: 0xDEAD_BEEF, producer: CDCCursor(wrap: 3, count: 65000),
      consumer: CDCCursor(wrap: 1, count: 17), producerFlags: [.writeBlocked, .cursorUpdateRequested],
      connectionState: [.peerClosed, .peerAbort])
    let bytes = message.encodeSMCR()
    #expect(bytes.count == 44)
    #expect(bytes.withUnsafeBytes { CDCMessage.decodeSMCR($0) } == message)
    #expect(Array(bytes[0..<43]).withUnsafeBytes { CDCMessage.decodeSMCR($0) } == nil)
  }

  @Test func smcDIsLittleEndianAndHasNoSeqno() throws {
    let message = CDCMessage(
      mode: .smcD, sequenceNumber: nil, token: nil, producer: CDCCursor(wrap: 0x0102, count: 0x0304_0506),
      consumer: CDCCursor(wrap: 7, count: 8), producerFlags: [.urgentPending],
      connectionState: [.peerDoneWriting])
    let bytes = message.encodeSMCD()
    #expect(bytes.count == 32)
    #expect(bytes[8] == 0x02 && bytes[9] == 0x01)  // wrap, little-endian
    #expect(bytes[10] == 0x06 && bytes[13] == 0x03)  // count, little-endian
    #expect(bytes.withUnsafeBytes { CDCMessage.decodeSMCD($0) } == message)
  }
}
