/**
 * gRPC channel options for every client connection to Temporal.
 *
 * The client SDK means to raise grpc-js's 4 MB receive limit to 128 MB, but it names the option
 * `max_receive_message_length`, without the `grpc.` prefix grpc-js reads, so the 4 MB default stays. A
 * history holding a few large payloads (two 1.5 MB signal arguments a misbehaving client sent) then cannot
 * be fetched at all: `governance audit`, `--verify` and a fork fail with "RESOURCE_EXHAUSTED: Received
 * message larger than max". The server bounds one payload (2 MB) and one history (50 MB), so 128 MB is
 * enough for any page it sends.
 */
export const CLIENT_CHANNEL_ARGS: Readonly<Record<string, number>> = {
  'grpc.max_receive_message_length': 128 * 1024 * 1024,
};
