#include <narwhal.h>
int app(nw_request *req) { (void)req; return 0; }
