// Package pcapng writes capture files: pcapng (the default) and classic pcap
// with nanosecond timestamps, behind one small Writer interface.
//
// The pcapng writer produces one little-endian section:
//
//   - a Section Header Block with shb_hardware, shb_os, shb_userappl and
//     comments (Config);
//   - one Interface Description Block per AddInterface, with if_name,
//     if_description, if_filter (libpcap filter string), if_os and
//     if_tsresol = 9, so every timestamp in the file is in nanoseconds;
//   - one Enhanced Packet Block per WritePacket, with epb_flags (direction
//     and reception type), an optional comment and an optional
//     epb_dropcount;
//   - Name Resolution Blocks for the addresses given to AddNames, batched and
//     written before the next packet, statistics block or flush. A name
//     learnt from a DNS answer thus precedes every later packet to that
//     address, and a one-pass reader (tshark -r, a live pipe) shows it for
//     the connections the program makes after resolving;
//   - Interface Statistics Blocks from WriteStats (isb_starttime,
//     isb_endtime, isb_ifrecv, isb_ifdrop, isb_osdrop, isb_filteraccept where
//     known, and isb_usrdeliv, the packets this writer wrote for the
//     interface).
//
// Classic pcap (magic 0xa1b23c4d, nanosecond timestamps) has no room for
// metadata: it takes a single interface, and comments, direction flags, names
// and statistics are left out.
//
// # Limits
//
// An option value is at most 65535 bytes and a metadata block (section
// header, interface description, statistics, names) at most MaxBlockSize
// bytes, the size of the largest packet block; longer values are refused with an error
// wrapping ErrTooLong, never truncated. A packet may not carry more bytes than
// its interface's snap length (DefaultSnapLen when zero).
//
// # Performance
//
// Writing a packet costs no allocation. Blocks are collected in a buffer and
// handed to the underlying io.Writer in batches of at least
// Config.BufferSize bytes (1 MiB by default); only Flush, Release and Close
// write less. Flush pushes everything written so far, for live output into
// a pipe.
//
// WritePacketRef spares large packets (1 KiB and more) the copy into the
// buffer: the buffer holds the block's header and tail, and the data stays
// where the caller has it, a capture ring for instance, until Release,
// Flush or Close hands the batch over. Into an *os.File that is one
// writev(2) per batch of at most 500 such packets; into another io.Writer,
// one Write per piece. The file is the same byte for byte as with
// WritePacket.
//
// # Errors
//
// The first error of the underlying io.Writer is sticky: it is returned from
// every later call, Close included, so a full disk cannot go unnoticed
// (errors.Is(err, syscall.ENOSPC) holds). When the io.Writer is a regular
// file written at its end (an *os.File), the writer then truncates it back
// to the end of the last block that reached it whole, so the file stays a
// clean capture of everything before the failure; into a pipe, the reader
// sees a capture cut short and stops there.
//
// Invalid arguments (an unknown interface, a value too long, a packet longer
// than its snap length) are refused before anything is written and do not
// poison the writer.
//
// Strings are written as given; pcapng expects UTF-8.
//
// A Writer is not safe for concurrent use.
package pcapng
