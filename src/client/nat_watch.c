#include "client/nat_watch.h"

#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

void wzp_nat_watch_start(wzp_nat_watch *p, const wzp_addr *relay, int main_sock,
                         const wzp_addr *main_local, int filter_sock, const wzp_addr *filter_local,
                         wzp_ts now)
{
    p->running = p->early = false;
    if (wzp_addr_family(relay) != AF_INET || wzp_addr_family(main_local) != AF_INET)
        return;
    p->main_sock = main_sock;
    p->filter_sock = filter_sock >= 0 && filter_local && wzp_addr_family(filter_local) == AF_INET
                         ? filter_sock
                         : -1;
    /* Without a filter socket its tests run on the main one (their verdict is ignored). */
    const wzp_addr *fl = p->filter_sock >= 0 ? filter_local : main_local;
    p->running = wzp_natcheck_start(&p->nc, relay, main_local, fl, now) == 0;
}

/*
 * The verdict for the calls' CallParams: mapping and ports as soon as they
 * are settled (a round trip), with the filtering unknown (birthday probing
 * takes that as port-dependent), then everything once the filtering tests
 * have waited out their timeouts (~2.75 s): a call placed right after
 * registering should not wait for those.
 */
static void finish(wzp_nat_watch *p)
{
    if (!p->running)
        return;
    bool final = wzp_natcheck_done(&p->nc);
    if (!final && (p->early || !wzp_natcheck_mapping_done(&p->nc)))
        return;
    p->running = !final;
    p->early = true;
    p->measured++;
    wzp_natcheck_result r;
    wzp_natcheck_get_result(&p->nc, &r);
    wzp_natcheck_to_sig(&r, &p->nat);
    if (p->filter_sock < 0 || !final)
        p->nat.filtering = 0;
    if (!r.alt) /* no alternate address: nothing tells mappings apart */
        memset(&p->nat, 0, sizeof(p->nat));
    WZP_INFO("client: NAT mapping %s, filtering %s, ports %s (delta %d, range %u-%u, last %u)",
             wzp_nc_mapping_name(r.mapping),
             p->nat.filtering ? wzp_nc_filtering_name(r.filtering) : "unknown",
             wzp_nc_ports_name(r.ports), r.port_delta, r.port_lo, r.port_hi, r.last_port);
}

int wzp_nat_watch_poll(wzp_nat_watch *p, wzp_ts now, uint8_t *buf, size_t cap, int *sock,
                       wzp_addr *to)
{
    if (!p->running)
        return 0;
    int s = 0;
    int n = wzp_natcheck_poll(&p->nc, now, buf, cap, &s, to);
    if (n > 0) {
        *sock = s == 1 && p->filter_sock >= 0 ? p->filter_sock : p->main_sock;
        return n;
    }
    finish(p);
    return n < 0 ? n : 0;
}

bool wzp_nat_watch_recv(wzp_nat_watch *p, int sock, const wzp_addr *from, const uint8_t *data,
                        size_t len, wzp_ts now)
{
    if (!p->running || (sock != p->main_sock && sock != p->filter_sock))
        return false;
    wzp_natcheck_recv(&p->nc, sock == p->main_sock ? 0 : 1, from, data, len, now);
    if (p->filter_sock < 0 && sock == p->main_sock)
        wzp_natcheck_recv(&p->nc, 1, from, data, len, now);
    finish(p);
    return true;
}

wzp_ts wzp_nat_watch_deadline(const wzp_nat_watch *p)
{
    return p->running ? wzp_natcheck_deadline(&p->nc) : WZP_TS_NEVER;
}
