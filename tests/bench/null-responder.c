/* null-responder.c - the kernel's floor for a UDP DNS server (tests/bench/qps-bench):
 * receives on 127.0.0.1:PORT with recvmmsg in batches of 32, sets the QR bit of
 * each message and sends it back with sendmmsg. No DNS work at all.
 * usage: null-responder PORT [SOCKET_BUFFER_BYTES (default 4194304)]; stops on SIGTERM. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#define BATCH 32

int main(int argc, char **argv)
{
	static char data[BATCH][4096];
	struct sockaddr_in from[BATCH], sa = {.sin_family = AF_INET};
	struct iovec iov[BATCH];
	struct mmsghdr m[BATCH];
	int buf = argc > 2 ? atoi(argv[2]) : 4194304;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (argc < 2 || atoi(argv[1]) <= 0) {
		fputs("usage: null-responder PORT [SOCKET_BUFFER_BYTES]\n", stderr);
		return 2;
	}
	sa.sin_port = htons((unsigned short)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("null-responder");
		return 1;
	}
	for (;;) {
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){data[i], sizeof(data[i])};
			m[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
			                               .msg_namelen = sizeof(from[i]),
			                               .msg_iov = &iov[i],
			                               .msg_iovlen = 1};
		}
		int n = recvmmsg(fd, m, BATCH, MSG_WAITFORONE, NULL);
		for (int i = 0; i < n; i++) {
			iov[i].iov_len = m[i].msg_len;
			data[i][2] |= (char)0x80; /* QR: this is a response */
		}
		for (int sent = 0; sent < n;) {
			int r = sendmmsg(fd, m + sent, (unsigned)(n - sent), 0);
			sent += r > 0 ? r : 1; /* skip a message that cannot be sent */
		}
	}
}
