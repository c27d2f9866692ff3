/* bootfail - an app whose nw_worker_init fails: for the boot-failure tests. */
#include <narwhal.h>

int nw_worker_init(void)
{
    nw_log(NULL, NW_LOG_ERROR, "bootfail: refusing to boot on purpose");
    return 1;
}

int app(nw_request *req)
{
    (void)req;
    return 0;
}
