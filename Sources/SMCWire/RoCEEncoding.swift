/// Builds RoCEv2 UDP payloads (BTH, extension headers, payload, pad, ICRC) for tests and
/// synthetic captures. The ICRC is written as zero: no reader here checks it.
public enum RoCEv2Builder {
  /// One packet: `reth` (virtual address, rkey, DMA length) for RDMA WRITE First/Only,
  /// `immediate` for the WITH IMMEDIATE opcodes, `aeth` for acknowledgements, in the order
  /// the InfiniBand specification puts them.
  public static func packet(
    opcode: UInt8, destinationQP: UInt32, psn: UInt32, partitionKey: UInt16 = 0xFFFF,
    reth: (virtualAddress: UInt64, rkey: UInt32, length: UInt32)? = nil, immediate: UInt32? = nil,
    aeth: UInt32? = nil, payload: [UInt8]
  ) -> [UInt8] {
    let pad = (4 - payload.count % 4) % 4
    var out = [UInt8](repeating: 0, count: InfiniBandBTH.length)
    out[0] = opcode
    out[1] = UInt8(pad) << 4
    put16(&out, 2, partitionKey)
    put32(&out, 4, destinationQP & 0x00FF_FFFF)
    put32(&out, 8, 0x8000_0000 | psn & 0x00FF_FFFF)
    if let reth {
      var header = [UInt8](repeating: 0, count: 16)
      put64(&header, 0, reth.virtualAddress)
      put32(&header, 8, reth.rkey)
      put32(&header, 12, reth.length)
      out += header
    }
    if let aeth {
      var header = [UInt8](repeating: 0, count: 4)
      put32(&header, 0, aeth)
      out += header
    }
    if let immediate {
      var header = [UInt8](repeating: 0, count: 4)
      put32(&header, 0, immediate)
      out += header
    }
    out += payload
    out += [UInt8](repeating: 0, count: pad + RoCEv2Packet.icrcLength)
    return out
  }

  /// A SEND ONLY carrying one 44-byte CDC or LLC message.
  public static func sendOnly(destinationQP: UInt32, psn: UInt32, message: [UInt8]) -> [UInt8] {
    packet(opcode: RCOperation.sendOnly.rawValue, destinationQP: destinationQP, psn: psn, payload: message)
  }
}
