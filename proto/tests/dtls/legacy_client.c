/* A GnuTLS DTLS client for the legacy Cisco mode (protocol.md §4.3): it "resumes" a session whose
 * master secret and session id it is given, through gnutls_session_set_premaster() — the GnuTLS
 * call openconnect uses for this mode — sends one record and expects it echoed.
 * Written for rocserv's interop test (proto/tests/dtls_gnutls.rs).
 *
 * usage: legacy_client PORT SUITE MASTER_HEX(96) SESSION_ID_HEX(64)
 *   SUITE: aes128gcm | aes256gcm | aes128sha | aes256sha
 */
#include <arpa/inet.h>
#include <gnutls/dtls.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int unhex(const char *s, unsigned char *out, size_t n) {
    if (strlen(s) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned int b;
        if (sscanf(s + 2 * i, "%2x", &b) != 1) return -1;
        out[i] = (unsigned char)b;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    unsigned char master[48], sid[32];
    if (unhex(argv[3], master, 48) || unhex(argv[4], sid, 32)) return 2;
    const char *suite = argv[2];
    const char *prio;
    gnutls_protocol_t version;
    gnutls_cipher_algorithm_t cipher;
    gnutls_mac_algorithm_t mac;
    if (!strcmp(suite, "aes128gcm") || !strcmp(suite, "aes256gcm")) {
        int big = suite[3] == '2';
        version = GNUTLS_DTLS1_2;
        cipher = big ? GNUTLS_CIPHER_AES_256_GCM : GNUTLS_CIPHER_AES_128_GCM;
        mac = GNUTLS_MAC_AEAD;
        prio = big ? "NONE:+VERS-DTLS1.2:+COMP-NULL:+AES-256-GCM:+AEAD:+RSA:+SIGN-ALL:%COMPAT"
                   : "NONE:+VERS-DTLS1.2:+COMP-NULL:+AES-128-GCM:+AEAD:+RSA:+SIGN-ALL:%COMPAT";
    } else {
        int big = suite[3] == '2';
        version = GNUTLS_DTLS0_9;
        cipher = big ? GNUTLS_CIPHER_AES_256_CBC : GNUTLS_CIPHER_AES_128_CBC;
        mac = GNUTLS_MAC_SHA1;
        prio = big ? "NONE:+VERS-DTLS0.9:+COMP-NULL:+AES-256-CBC:+SHA1:+RSA:%COMPAT"
                   : "NONE:+VERS-DTLS0.9:+COMP-NULL:+AES-128-CBC:+SHA1:+RSA:%COMPAT";
    }

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(argv[1]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) return 3;

    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
    const char *err = NULL;
    gnutls_global_init();
    gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_DATAGRAM);
    gnutls_certificate_allocate_credentials(&cred);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    if (gnutls_priority_set_direct(s, prio, &err) < 0) {
        fprintf(stderr, "priority error at %s\n", err);
        return 4;
    }
    gnutls_datum_t m = {master, 48}, id = {sid, 32};
    int ret = gnutls_session_set_premaster(s, GNUTLS_CLIENT, version, GNUTLS_KX_RSA, cipher, mac,
                                           GNUTLS_COMP_NULL, &m, &id);
    if (ret < 0) {
        fprintf(stderr, "set_premaster: %s\n", gnutls_strerror(ret));
        return 4;
    }
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, 10000);
    do {
        ret = gnutls_handshake(s);
    } while (ret < 0 && !gnutls_error_is_fatal(ret));
    if (ret < 0) {
        fprintf(stderr, "handshake failed: %s\n", gnutls_strerror(ret));
        return 5;
    }
    char *desc = gnutls_session_get_desc(s);
    printf("resumed=%d %s\n", gnutls_session_is_resumed(s), desc);
    gnutls_free(desc);

    const char msg[] = "\x00legacy hello";
    char buf[256];
    gnutls_record_set_timeout(s, 5000);
    if (gnutls_record_send(s, msg, sizeof msg - 1) < 0) return 6;
    ssize_t n = gnutls_record_recv(s, buf, sizeof buf);
    if (n != (ssize_t)(sizeof msg - 1) || memcmp(buf, msg, sizeof msg - 1)) {
        fprintf(stderr, "bad echo (%zd)\n", n);
        return 7;
    }
    printf("echo ok\n");
    gnutls_bye(s, GNUTLS_SHUT_WR);
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
    close(fd);
    return 0;
}
