/* bcryptprimitives.dll for Wine 8.0, which has none: Rust's std (1.78 and
 * later) gets its random numbers from ProcessPrng there, and a program that
 * imports a function no DLL provides does not start. This one gives
 * ProcessPrng from RtlGenRandom (advapi32's SystemFunction036), which Wine
 * has. For CI only (.ci/run builds it beside the .exe under test); Windows 10
 * and later have the real DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    /* RtlGenRandom takes a ULONG: a larger request goes in pieces. */
    while (length > 0) {
        ULONG piece = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, piece))
            return FALSE;
        data += piece;
        length -= piece;
    }
    return TRUE;
}
