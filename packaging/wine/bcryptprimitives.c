/*
 * Test-only stand-in for Windows' bcryptprimitives.dll, for Wine 8 (Debian 12), which
 * lacks it. Rust's standard library (1.78 and later) takes its random numbers from
 * `ProcessPrng` in that DLL; Wine 8 has `RtlGenRandom` (advapi32's SystemFunction036),
 * so this forwards to it. packaging/check-windows builds it into its own Wine prefix.
 * It is never part of a release: real Windows 10 and later have the genuine DLL.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
