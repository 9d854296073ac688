// Header hygiene: the public headers build as C++11 and link from C++.
#include "dsv3.h"
#if DSV3_TEST_UV
#include "dsv3_uv.h"
#endif

int main()
{
    dsv3_model_params p;
    if (dsv3_model_params_init(&p, sizeof p) != DSV3_OK)
        return 1;
    return dsv3_abi_version() == DSV3_ABI_VERSION ? 0 : 1;
}
