/* The test-only broken family names no fields; family.h needs GP_F_g_goid. */
#define GP_F_g_goid 0
#define GP_F_COUNT 1
