/* The layout pins are _Static_asserts in layout.c: building is the test. */
int dsv3_layout_pins_checked(void);

int main(void)
{
    return dsv3_layout_pins_checked() ? 0 : 1;
}
