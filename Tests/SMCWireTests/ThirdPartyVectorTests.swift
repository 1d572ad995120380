import SMCWire
import TestSupport
import Testing

/// Messages produced by real Linux kernels or by other people's tools, with the values
/// their independent decoders printed. Sources (public, reference only):
/// - hwipl's SMC notes (github.com/hwipl/smc, handshake.md): a CLC handshake captured on
///   loopback between two Linux SMC-R hosts, decoded by hwipl/smc-clc.
/// - hwipl/smc-go test vectors: SMC-D Accept v1, SMC-D v2 Accept with first-contact
///   extension, an SMC-R CDC message, an LLC Confirm Link.
enum ThirdParty {
  static let proposalIPv4 = hexBytes(
    """
    e2 d4 c3 d9 01 00 34 10  b1 a0 98 03 9b ab cd ef
    fe 80 00 00 00 00 00 00  9a 03 9b ff fe ab cd ef
    98 03 9b ab cd ef 00 00  7f 00 00 00 08 00 00 00
    e2 d4 c3 d9
    """)
  static let proposalIPv6 = hexBytes(
    """
    e2 d4 c3 d9 01 00 45 10  39 44 98 03 9b ab cd ef
    fe 80 00 00 00 00 00 00  9a 03 9b ff fe ab cd ef
    98 03 9b ab cd ef 00 00  00 00 00 00 00 00 00 01
    00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 01
    80 e2 d4 c3 d9
    """)
  static let accept = hexBytes(
    """
    e2 d4 c3 d9 02 00 44 18  b1 a0 98 03 9b ab cd ef
    fe 80 00 00 00 00 00 00  9a 03 9b ff fe ab cd ef
    98 03 9b ab cd ef 00 00  e4 00 00 15 7d 01 00 00
    00 05 23 00 00 00 00 00  f0 a6 00 00 00 72 f5 fe
    e2 d4 c3 d9
    """)
  static let confirm = hexBytes(
    """
    e2 d4 c3 d9 03 00 44 10  b1 a0 98 03 9b ab cd ef
    fe 80 00 00 00 00 00 00  9a 03 9b ff fe ab cd ef
    98 03 9b ab cd ef 00 00  e5 00 00 18 7f 01 00 00
    00 06 23 00 00 00 00 00  f0 a4 00 00 00 0d 89 a4
    e2 d4 c3 d9
    """)
  static let decline = hexBytes(
    """
    e2 d4 c3 d9 04 00 1c 10  25 25 25 25 25 25 25 00
    03 03 00 00 00 00 00 00  e2 d4 c3 d9
    """)
  static let smcdAccept = hexBytes(
    "e2d4c3c4020030110123456789abcdef0123456789abcdefff100000ffffffff000000000000000000000000e2d4c3c4")
  static let smcdV2AcceptFCE = hexBytes(
    "e2d4c3c4" + "02" + "0072" + "29" + "0123456789abcdef" + "0123456789abcdef" + "ff" + "10" + "0000"
      + "ffffffff" + "0123" + "546869734973534d4376324549443031" + "00000000000000000000000000000000"
      + "0000000000000000" + "00" + "20" + "0000" + "546869734973486f73746e616d653031"
      + "00000000000000000000000000000000" + "e2d4c3c4")
  static let cdc = hexBytes(
    """
    fe 2c 00 01 00 00 00 03  00 00 00 00 00 00 00 0d
    00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00  00 00 00 00
    """)
  static let llcConfirmLink = hexBytes(
    """
    01 2c 00 03 98 03 9b ab  cd ef fe 80 00 00 00 00
    00 00 9a 03 9b ff fe ab  cd ef 00 01 07 00 00 01
    00 00 02 00 00 00 00 00  00 00 00 00
    """)
}

@Suite struct ThirdPartyVectors {
  func decode(_ bytes: [UInt8]) -> CLCMessage? {
    bytes.withUnsafeBytes { CLCMessage.decode($0)?.message }
  }

  @Test func realKernelProposalIPv4() throws {
    let m = try #require(decode(ThirdParty.proposalIPv4))
    #expect(m.kind == .proposal)
    #expect(m.length == 52)
    #expect(m.version == 1)
    #expect(m.path == .smcR)
    #expect(m.problem == nil)
    // smc-clc: "Peer ID: 45472@98:03:9b:ab:cd:ef" (instance 0xb1a0 + MAC).
    #expect(m.peerID == 0xB1A0_9803_9BAB_CDEF)
    #expect(m.mac == 0x9803_9BAB_CDEF)
    #expect(m.ipAreaOffset == 0)
    // "IPv4 Prefix: 127.0.0.0/8, IPv6 Prefix Count: 0".
    #expect(m.ipv4Subnet == 0x7F00_0000)
    #expect(m.ipv4PrefixLength == 8)
    #expect(m.ipv6PrefixCount == 0)
  }

  @Test func realKernelProposalIPv6() throws {
    let m = try #require(decode(ThirdParty.proposalIPv6))
    #expect(m.length == 69)
    #expect(m.problem == nil)
    #expect(m.peerID == 0x3944_9803_9BAB_CDEF)  // 14660@98:03:9b:ab:cd:ef
    #expect(m.ipv6PrefixCount == 1)
  }

  @Test func realKernelAcceptAndConfirm() throws {
    let a = try #require(decode(ThirdParty.accept))
    #expect(a.kind == .accept)
    #expect(a.firstContact)
    #expect(a.mode == .smcR)
    // "QP Number: 228, RMB RKey: 5501, RMBE Index: 1, RMBE Alert Token: 5,
    //  RMBE Size: 2 (65536), QP MTU: 3 (1024), RMB Virtual Address: 0xf0a60000,
    //  Packet Sequence Number: 7534078"
    #expect(a.qpNumber == 228)
    #expect(a.rmbRkey == 5501)
    #expect(a.rmbeIndex == 1)
    #expect(a.alertToken == 5)
    #expect(a.rmbeSizeCode == 2)
    #expect(a.bufferSize == 65536)
    #expect(a.qpMTU == 3)
    #expect(a.rmbAddress == 0xF0A6_0000)
    #expect(a.initialPSN == 7_534_078)
    let c = try #require(decode(ThirdParty.confirm))
    #expect(c.kind == .confirm)
    #expect(!c.firstContact)
    #expect(c.qpNumber == 229)
    #expect(c.rmbRkey == 6271)
    #expect(c.alertToken == 6)
    #expect(c.rmbAddress == 0xF0A4_0000)
    #expect(c.initialPSN == 887_204)
  }

  @Test func realKernelDecline() throws {
    let d = try #require(decode(ThirdParty.decline))
    #expect(d.kind == .decline)
    #expect(d.length == 28)
    #expect(d.path == .smcR)
    // "Peer Diagnosis: no SMC device found (R or D)"
    #expect(d.diagnosis == 0x0303_0000)
    #expect(d.declineName == "NOSMCDEV")
    #expect(DeclineReason.explanations[0x0303_0000] == "no SMC device found (R or D)")
  }

  @Test func smcDAcceptV1AndV2() throws {
    let v1 = try #require(decode(ThirdParty.smcdAccept))
    // "Length: 48, Version: 1, First Contact: 0, Path: SMC-D, SMC-D GID: 81985529216486895,
    //  SMC-D Token: 81985529216486895, DMBE Index: 255, DMBE Size: 1 (32768), Link ID: 4294967295"
    #expect(v1.length == 48)
    #expect(v1.version == 1)
    #expect(!v1.firstContact)
    #expect(v1.mode == .smcD)
    #expect(v1.eyecatcherIsSMCD)
    #expect(v1.ismGID == 81_985_529_216_486_895)
    #expect(v1.dmbToken == 81_985_529_216_486_895)
    #expect(v1.dmbeIndex == 255)
    #expect(v1.dmbeSizeCode == 1)
    #expect(v1.bufferSize == 32768)
    #expect(v1.linkID == 4_294_967_295)
    #expect(v1.problem == nil)
    let v2 = try #require(decode(ThirdParty.smcdV2AcceptFCE))
    #expect(ThirdParty.smcdV2AcceptFCE.count == 114)
    #expect(v2.length == 114)
    #expect(v2.version == 2)
    #expect(v2.firstContact)
    #expect(v2.mode == .smcD)
    #expect(v2.dmbToken == 81_985_529_216_486_895)
    #expect(v2.problem == nil)
  }

  @Test func cdcVector() throws {
    let c = try #require(ThirdParty.cdc.withUnsafeBytes { CDCMessage.decodeSMCR($0) })
    // "Sequence Number: 1, Alert Token: 3, Producer Wrap: 0, Producer Cursor: 13, ..."
    #expect(c.sequenceNumber == 1)
    #expect(c.token == 3)
    #expect(c.producer == CDCCursor(wrap: 0, count: 13))
    #expect(c.consumer == CDCCursor(wrap: 0, count: 0))
    #expect(c.producerFlags.isEmpty)
    #expect(c.connectionState.isEmpty)
    // And our encoder reproduces the bytes exactly.
    #expect(c.encodeSMCR() == ThirdParty.cdc)
  }

  @Test func llcVector() throws {
    let l = try #require(ThirdParty.llcConfirmLink.withUnsafeBytes { LLCMessage.decode($0) })
    #expect(l.name == "confirm_link")
    #expect(l.length == 44)
    #expect(!l.isResponse)
  }

  @Test func ourBuilderReproducesRealKernelBytes() {
    // The encoder used by fixtures and the lab emulator must lay out fields as Linux does.
    let accept = CLCBuilder.acceptConfirmR(
      .accept, firstContact: true, peerID: 0xB1A0_9803_9BAB_CDEF,
      gid: (0xFE80_0000_0000_0000, 0x9A03_9BFF_FEAB_CDEF), mac: 0x9803_9BAB_CDEF, qpNumber: 228,
      rmbRkey: 5501,
      rmbeIndex: 1, alertToken: 5, rmbeSizeCode: 2, qpMTU: 3, rmbAddress: 0xF0A6_0000, initialPSN: 7_534_078)
    #expect(accept == ThirdParty.accept)
    let decline = CLCBuilder.decline(peerID: 0x2525_2525_2525_2500, diagnosis: 0x0303_0000, osType: 0)
    // hwipl's decline shows path bits 0 (R), ours sets path N: compare all but byte 7.
    #expect(Array(decline[0..<7]) == Array(ThirdParty.decline[0..<7]))
    #expect(Array(decline[8...]) == Array(ThirdParty.decline[8...]))
    let proposal = CLCBuilder.proposal(
      peerID: 0xB1A0_9803_9BAB_CDEF, gid: (0xFE80_0000_0000_0000, 0x9A03_9BFF_FEAB_CDEF),
      mac: 0x9803_9BAB_CDEF,
      subnet: 0x7F00_0000, prefixLength: 8)
    #expect(Array(proposal[0..<7]) == Array(ThirdParty.proposalIPv4[0..<7]))
    #expect(Array(proposal[8...]) == Array(ThirdParty.proposalIPv4[8...]))
    let smcd = CLCBuilder.acceptConfirmD(
      .accept, firstContact: false, ismGID: 0x0123_4567_89AB_CDEF, dmbToken: 0x0123_4567_89AB_CDEF,
      dmbeIndex: 255,
      dmbeSizeCode: 1, linkID: 0xFFFF_FFFF)
    #expect(smcd == ThirdParty.smcdAccept)
  }
}
