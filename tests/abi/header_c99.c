/* Header hygiene: the public headers build as strict C99 (-pedantic -Werror). */
#include "dsv3.h"
#if DSV3_TEST_UV
#include "dsv3_uv.h"
#endif

int main(void)
{
    return dsv3_abi_version() == DSV3_ABI_VERSION ? 0 : 1;
}
