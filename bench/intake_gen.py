#!/usr/bin/env python3
"""Writes a school-directory-shaped list (Windows-1252, ';', many columns) of N rows."""
import sys

def main(path, n):
    provinces = ["08", "17", "25", "43"]
    header = ("Curs;Codi centre;Denominació completa;Codi naturalesa;Nom naturalesa;"
              "Codi titularitat;Nom titularitat;Adreça;Codi postal;Telèfon;Nom municipi;"
              "Nom comarca;E-mail centre;Web;EINF1C;EINF2C;EPRI;ESO;BATX;Coordenades GEO X;"
              "Coordenades GEO Y")
    kinds = ["Escola", "Institut", "Escola Bressol", "Col·legi", "Institut Escola"]
    towns = ["Badalona", "Girona", "Lleida", "Tarragona", "Sant Martí", "L'Hospitalet",
             "Vic", "Tàrrega", "Reus", "Figueres"]
    with open(path, "w", encoding="cp1252", newline="") as f:
        f.write(header + "\r\n")
        for i in range(n):
            prov = provinces[i % 4]
            code = f"{prov}{i:06d}"
            client = "abce"[i % 4] + code[1:]
            town = towns[i % len(towns)]
            name = f"{kinds[i % len(kinds)]} Bertí Ñandú {i} de {town}"
            primary = i % 3 != 0
            web = (f"https://agora.xtec.cat/site{i}/moodle/" if i % 5 == 0
                   else f"https://www.escola{i}.cat" if i % 5 == 1 else "")
            cells = ["2025/2026", code, name, "1", "Públic", "1", "Departament d'Educació",
                     f"\"C. Major, {i}\"", f"{prov}{i % 1000:03d}", "934000000", town, "Comarca",
                     f"{client}@xtec.cat", web, "EINF1C" if primary else "",
                     "EINF2C" if primary else "", "EPRI" if primary else "",
                     "" if primary else "ESO", "" if primary else "BATX",
                     "2.1234", "41.5678"]
            f.write(";".join(cells) + "\r\n")

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10000)
