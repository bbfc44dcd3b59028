"""Words that carry no topic in residents' questions, per language, with dots folded away.

Besides the grammar words, the lists hold question words, polite fillers and
colloquial forms ("mites", "voiks", "mä") that residents type in chat.
"""

from __future__ import annotations

FINNISH = """
ja tai sekä mutta vaan että jos kun kuin niin myös vain jo vielä sitten nyt siis eli
ei en et emme ette eivat ole olen olet on olemme olette ovat oli olin olisi olla ollut
mina sina han me te he se ne tama tuo nama nuo ma sa mä sä mun sun meidan teidan heidan
minun sinun hanen sen niiden taman tuon minua sinua minulle sinulle meille teille heille
mita mika mitka kuka ketka kenelle kenen mihin missa mista miten mitenka miksi milloin
kuinka montako paljonko kumpi mites mitas mikas missas miks mitä onko onks voiko voiks
voinko voisinko voisiko voinks voisko pitaako pitaisiko pitaaks saako saanko saisinko
kannattaako tarvitseeko tarviiko voi voin voit voimme voitte voivat voisin voisit
pitaa pitaisi pitais taytyy tarvitsen tarvii haluan haluisin haluaisin haluun halusin
tiedatko tietaako tiedat kerro kertoisitko kertokaa selita
hei moi moro terve kiitos kiitti ok okei joo juu no noh niinku tota tuota siina siita
taalla siella tanne sinne jotain jotakin joku jokin jossain kaikki kaikkea mitaan
olisiko onkohan onkos ois oisko olis ollaanko ollaan kai ehka about vaikka esim
mulla sulla meilla teilla mulle sulle multa sulta itse itseni oma oman omaa omia
jotta koska kunnes vai ettei jne yms kans kanssa ilman kohti luona alla paalla yli
tassa tasta tahan nain noin ihan tosi todella aika kovasti paljon vahan hyvin
saada saa saan sais saisi tehda teen tee tehdaan tekee tehty
oon oot ois oisin oisko haluun haluis haluisin haluaisin onks onko oliks joku jotku
et etta taa toi noi tos tas tahan tohon mites tehaan tehda tulis tulisi pari jostain
siita sita sen sinne kaytannossa oikein oikeesti vaan vai sit sitte sitten just jo
ihan kylla kai muka niinku tyyliin eli mulle mun sun sulle meil teil niil ne noi
jne yms esim jotenkin mitenkaan missaan mihinkaan kukaan mitaan jokin jotain
"""

SWEDISH = """
och eller men att om som så också bara redan ännu nu då alltså
inte ej är var vara varit blir bli blev har hade ha haft kan kunde ska skall skulle
vill ville måste får fick bör
jag du han hon vi ni de den det dessa detta denna man mig dig oss er dem sig
min mitt mina din ditt dina vår vårt våra er ert era hans hennes deras sin sitt sina
vad vem vilken vilket vilka var varifrån vart hur varför när hurdan
en ett till från för med på av i ur vid hos under över efter före mot utan
hej hejsan tack tja okej ja nej jo nå liksom typ här där hit dit något någon några allt alla
mycket lite gärna bra kanske t.ex
berätta förklara undrar veta vet
göra gör gjorde gjort ja e int sku nån ju he di dom nu va sen såna sådana sån någon något hurdan
skulle kunde borde ens bara fast också ännu redan
"""

ENGLISH = """
a an the and or but if then so also just only already still now as than that this these
those there here is am are was were be been being do does did done doing have has had
having will would shall should can could may might must
i me my mine we us our you your yours he him his she her it its they them their
what which who whom whose where when why how whats hows wheres
to of in on at by for with from about into over under up down out off
hi hello hey thanks thank please ok okay yes no yeah pls plz
some any anything something all much many very really quite lot lots
tell explain know want wanna need get got make like
im ive id would could there some one anyone someone anything something where find
can cant dont doesnt didnt is isnt are arent was wasnt actually really just also ever
"""


def _folded(words: str) -> frozenset[str]:
    table = str.maketrans({"ä": "a", "ö": "o", "å": "a"})
    return frozenset(w.translate(table) for w in words.split())


STOPWORDS_BY_LANGUAGE = {"fi": _folded(FINNISH), "sv": _folded(SWEDISH), "en": _folded(ENGLISH)}
STOPWORDS = frozenset().union(*STOPWORDS_BY_LANGUAGE.values())
