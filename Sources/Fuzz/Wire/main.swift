import CaptureFiles
// Fuzz target: bytes as a frame of every link type smcpair reads, and as CLC, CDC (SMC-R,
// SMC-D both byte orders) and LLC messages.
import FuzzReplay
import SMCWire

func fuzzOne(_ bytes: UnsafeRawBufferPointer) {
  for type in [LinkType.ethernet, .rawIP, .rawIPBSD, .linuxSLL, .linuxSLL2, .ipv4, .ipv6] {
    let frame = FrameDecoder.decode(bytes, linkType: type)
    _ = frame.payload.count
  }
  var offset = 0
  while offset < bytes.count,
    let (_, consumed) = CLCMessage.decode(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
  {
    guard consumed > 0 else { break }
    offset += consumed
  }
  _ = CDCMessage.decodeSMCR(bytes)
  _ = CDCMessage.decodeSMCD(bytes, littleEndian: true)
  _ = CDCMessage.decodeSMCD(bytes, littleEndian: false)
  _ = LLCMessage.decode(bytes)
  _ = DumpHeaderCalibrator.isDumpRecord(bytes)
}

/// libFuzzer's entry (a C function: no captures).
func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
  return 0
}

@main enum Main {
  static func main() { FuzzReplay.main(name: "fuzz-wire", fuzzInput) }
}
